fn main() {
    std::process::exit(daydream::cli::main());
}
