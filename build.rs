//! Bakes the libtorch library folder into every binary and test as an rpath, so
//! `shelfcast` and `cargo test` run without `LD_LIBRARY_PATH`.
//!
//! torch-sys reports the folder it linked against (`links = "tch"` metadata);
//! `LIBTORCH` is the fallback when that metadata is absent.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    let from_torch_sys =
        std::env::vars().find(|(k, _)| k.starts_with("DEP_") && k.ends_with("_LIBTORCH_LIB")).map(|(_, v)| v);
    let lib_dir = from_torch_sys.or_else(|| std::env::var("LIBTORCH").ok().map(|lt| format!("{lt}/lib")));
    if let Some(dir) = lib_dir {
        let target = std::env::var("TARGET").unwrap_or_default();
        if !target.contains("msvc") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
