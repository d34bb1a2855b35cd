/// A command-line failure: a message for the user saying what went wrong and what to do.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
