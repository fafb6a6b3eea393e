fn main() -> anyhow::Result<()> {
    soci_bench::main()
}
