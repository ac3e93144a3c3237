fn main() {
    std::process::exit(daydream::commands::cli::main());
}
