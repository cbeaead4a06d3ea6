//! Regenerates include/simplerpc.h from the exported items with cbindgen.

use std::path::PathBuf;

/// The SONAME's number: bumped when the C ABI changes incompatibly.
const SONAME_MAJOR: u32 = 0;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // In the workspace the header is include/simplerpc.h (committed); built
    // from a published crate, where that directory is not ours, it goes to
    // OUT_DIR instead.
    let in_workspace = crate_dir.join("../include/simplerpc.h").is_file();
    let header = if in_workspace {
        crate_dir.join("../include/simplerpc.h")
    } else {
        PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("simplerpc.h")
    };
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The shared library's SONAME carries the ABI's major number, so that
    // programs linked against libsimplerpc.so.0 keep finding it across
    // compatible upgrades (scripts/install-c.sh installs the links).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsimplerpc.so.{SONAME_MAJOR}");
    }
    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml");
    // The header's own version, to compare with srpc_version() at run time.
    let v = |k: &str| std::env::var(k).unwrap();
    config.after_includes = Some(format!(
        "\n/* The version of this header; srpc_version() gives the loaded library's. */\n\
         #define SRPC_VERSION \"{}\"\n\
         #define SRPC_VERSION_MAJOR {}\n\
         #define SRPC_VERSION_MINOR {}\n\
         #define SRPC_VERSION_PATCH {}",
        v("CARGO_PKG_VERSION"),
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
    ));
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&header);
        }
        Err(e) if in_workspace => panic!("cbindgen could not generate include/simplerpc.h: {e}"),
        // Outside the workspace the header is a convenience (the repository
        // and scripts/install-c.sh ship it): the library still builds.
        Err(e) => println!("cargo:warning=simplerpc.h not generated into OUT_DIR: {e}"),
    }
}
