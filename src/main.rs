//! The `nordgeo` command: a thin wrapper around the library's `cli` module.

fn main() -> std::process::ExitCode {
    nordgeo::cli::main()
}
