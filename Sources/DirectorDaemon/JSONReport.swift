import Foundation

/// The one way the director writes a report as JSON (`--json`, `/status.json`): sorted keys, the
/// snake_case names each report's `CodingKeys` give, one object and a newline.
enum JSONReport {
    static func encode<Value: Encodable>(_ value: Value) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return "{}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
