import Foundation

/// Runs one of the control plane's helper programs (`nft`, `director-tuning`) to completion and
/// returns its exit status with its standard output and error together. Never on the data path.
enum HelperProgram {
    struct Result {
        let status: Int32
        let output: String
    }

    static func run(_ path: String, _ arguments: [String], input: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = input.map { _ in Pipe() }
        process.standardInput = stdin ?? FileHandle.nullDevice
        try process.run()
        if let input, let stdin {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        // Read to the end before waiting: a helper that fills the pipe would otherwise never exit.
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: text)
    }
}
