//! With the `pyo3` feature, the binaries (tests, the example) find the
//! libpython they link against without LD_LIBRARY_PATH: an rpath to its
//! directory.
fn main() {
    #[cfg(feature = "pyo3")]
    {
        let config = pyo3_build_config::get();
        if let Some(dir) = &config.lib_dir {
            if cfg!(target_os = "linux") || cfg!(target_os = "macos") {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
            }
        }
    }
}
