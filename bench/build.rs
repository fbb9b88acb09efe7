//! `relay` includes the integration tests' harness (tests/common), which
//! starts the daemon as `env!("CARGO_BIN_EXE_nfdhcpd")`: cargo sets that only
//! for the daemon crate's own tests. Here it is `./nfdhcpd`, relative to the
//! working directory, and `relay` runs in its scratch directory, beside its
//! copy of the binary it measures (see `daemon_binary` in src/main.rs).

fn main() {
    println!("cargo:rustc-env=CARGO_BIN_EXE_nfdhcpd=./nfdhcpd");
    println!("cargo:rerun-if-changed=build.rs");
}
