//! Reference checkpoint generator on C zlib (libz-sys), written to behave like
//! upstream's zran loop: 16 KiB input chunks, a 32 KiB circular output window,
//! `inflate(Z_BLOCK)`, `inflateReset2(47)` between concatenated members.

use std::ffi::{c_int, c_uint, c_void};

use libz_sys as z;

unsafe extern "C" {
    fn calloc(n: usize, size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
}

unsafe extern "C" fn zalloc(_: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // SAFETY: plain libc allocation.
    unsafe { calloc(items as usize, size as usize) }
}

unsafe extern "C" fn zfree(_: *mut c_void, p: *mut c_void) {
    // SAFETY: `p` came from `zalloc`.
    unsafe { free(p) }
}

/// A checkpoint as the reference produces it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefPoint {
    pub cin: u64,
    pub cout: u64,
    pub bits: u8,
    pub window: Vec<u8>,
}

impl std::fmt::Debug for RefPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{in {}, out {}, bits {}}}",
            self.cin, self.cout, self.bits
        )
    }
}

const CHUNK: usize = 16384;
const WIN: usize = 32768;

fn new_stream() -> z::z_stream {
    z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    }
}

/// Build checkpoints of `gz` with C zlib; `Err(zlib code)` where upstream fails.
pub fn zran(gz: &[u8], span: u64) -> Result<Vec<RefPoint>, i32> {
    let mut strm = Box::new(new_stream());
    // SAFETY: valid stream with allocator set; version string from the library.
    let ret = unsafe {
        z::inflateInit2_(
            &mut *strm,
            47,
            z::zlibVersion(),
            std::mem::size_of::<z::z_stream>() as c_int,
        )
    };
    assert_eq!(ret, z::Z_OK);
    let r = run(&mut strm, gz, span);
    // SAFETY: initialised above.
    unsafe { z::inflateEnd(&mut *strm) };
    r
}

fn run(strm: &mut z::z_stream, gz: &[u8], span: u64) -> Result<Vec<RefPoint>, i32> {
    let mut window = vec![0u8; WIN];
    let mut input = vec![0u8; CHUNK];
    let mut pos = 0usize;
    let (mut totin, mut totout, mut last) = (0u64, 0u64, 0u64);
    let mut points = Vec::new();
    strm.avail_out = 0;
    loop {
        let n = CHUNK.min(gz.len() - pos);
        input[..n].copy_from_slice(&gz[pos..pos + n]);
        pos += n;
        if n == 0 {
            return Err(z::Z_DATA_ERROR);
        }
        strm.avail_in = n as c_uint;
        strm.next_in = input.as_mut_ptr();
        let mut ret;
        loop {
            if strm.avail_out == 0 {
                strm.avail_out = WIN as c_uint;
                strm.next_out = window.as_mut_ptr();
            }
            totin += u64::from(strm.avail_in);
            totout += u64::from(strm.avail_out);
            // SAFETY: next_in/next_out point into `input`/`window` with the given sizes.
            ret = unsafe { z::inflate(strm, z::Z_BLOCK) };
            totin -= u64::from(strm.avail_in);
            totout -= u64::from(strm.avail_out);
            if ret == z::Z_NEED_DICT {
                ret = z::Z_DATA_ERROR;
            }
            if ret == z::Z_MEM_ERROR || ret == z::Z_DATA_ERROR {
                return Err(ret);
            }
            if ret == z::Z_STREAM_END {
                if strm.avail_in > 0 || pos < gz.len() {
                    // SAFETY: initialised stream.
                    ret = unsafe { z::inflateReset2(strm, 47) };
                    if ret != z::Z_OK {
                        return Err(ret);
                    }
                    if strm.avail_in > 0 {
                        continue;
                    }
                }
                break;
            }
            let dt = strm.data_type;
            if dt & 128 != 0 && dt & 64 == 0 && (totout == 0 || totout - last > span) {
                let left = strm.avail_out as usize;
                let mut w = Vec::with_capacity(WIN);
                w.extend_from_slice(&window[WIN - left..]);
                w.extend_from_slice(&window[..WIN - left]);
                points.push(RefPoint {
                    cin: totin,
                    cout: totout,
                    bits: (dt & 7) as u8,
                    window: w,
                });
                last = totout;
            }
            if strm.avail_in == 0 {
                break;
            }
        }
        if ret == z::Z_STREAM_END {
            return Ok(points);
        }
    }
}
