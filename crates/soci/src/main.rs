fn main() {
    std::process::exit(soci_cli::main());
}
