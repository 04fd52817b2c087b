import Foundation

/// A small SVG bar chart: panels side by side, each with groups of bars (one per series) and
/// min–max whiskers. SVG, so the report needs no plotting library and renders on any forge.
struct BarChart {
    struct Panel {
        var title: String
        var groups: [(label: String, values: [Spread?])]
    }

    let title: String
    let series: [String]
    private(set) var panels: [Panel] = []
    static let colors = ["#2b6cb0", "#dd6b20", "#718096", "#38a169", "#805ad5"]

    init(title: String, series: [String]) {
        self.title = title
        self.series = series
    }

    mutating func addPanel(title: String, groups: [(String, [Spread?])]) {
        panels.append(Panel(title: title, groups: groups.map { (label: $0.0, values: $0.1) }))
    }

    func svg() -> String {
        let panelWidth = 440.0, panelHeight = 300.0, top = 60.0, legendHeight = 30.0
        let width = panelWidth * Double(max(panels.count, 1)) + 20
        let height = top + panelHeight + legendHeight + 30
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(width / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        for (index, panel) in panels.enumerated() {
            let left = 20 + Double(index) * panelWidth + 50, plotWidth = panelWidth - 80, bottom = top + panelHeight - 30
            let highest = panel.groups.flatMap { $0.values.compactMap { $0?.maximum } }.max() ?? 1
            let scale = (bottom - top - 20) / niceCeiling(highest)
            out += "<text x=\"\(Int(left + plotWidth / 2))\" y=\"\(Int(top - 8))\" text-anchor=\"middle\" font-size=\"13\">\(escape(panel.title))</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(bottom)\" x2=\"\(left + plotWidth)\" y2=\"\(bottom)\" stroke=\"black\"/>\n"
            for step in 0...4 {
                let value = niceCeiling(highest) * Double(step) / 4, y = bottom - value * scale
                out += "<line x1=\"\(left - 4)\" y1=\"\(y)\" x2=\"\(left + plotWidth)\" y2=\"\(y)\" stroke=\"#e2e8f0\"/>"
                out += "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(format(value, within: highest))</text>\n"
            }
            let groupWidth = plotWidth / Double(max(panel.groups.count, 1))
            let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
            for (groupIndex, group) in panel.groups.enumerated() {
                let groupLeft = left + Double(groupIndex) * groupWidth + groupWidth * 0.1
                for (seriesIndex, value) in group.values.enumerated() {
                    guard let value else { continue }
                    let x = groupLeft + Double(seriesIndex) * barWidth, y = bottom - value.median * scale
                    let color = BarChart.colors[seriesIndex % BarChart.colors.count]
                    out += "<rect x=\"\(x + 2)\" y=\"\(y)\" width=\"\(barWidth - 4)\" height=\"\(value.median * scale)\" fill=\"\(color)\"/>"
                    let middle = x + barWidth / 2
                    out += "<line x1=\"\(middle)\" y1=\"\(bottom - value.maximum * scale)\" x2=\"\(middle)\" y2=\"\(bottom - value.minimum * scale)\" stroke=\"black\"/>"
                    out += "<text x=\"\(middle)\" y=\"\(bottom - value.maximum * scale - 4)\" text-anchor=\"middle\" font-size=\"10\">\(format(value.median, within: highest))</text>\n"
                }
                out += "<text x=\"\(groupLeft + groupWidth * 0.4)\" y=\"\(bottom + 16)\" text-anchor=\"middle\">\(escape(group.label))</text>\n"
            }
        }
        var x = 30.0
        let legendY = top + panelHeight + 10
        for (index, name) in series.enumerated() {
            out += "<rect x=\"\(x)\" y=\"\(legendY)\" width=\"12\" height=\"12\" fill=\"\(BarChart.colors[index % BarChart.colors.count])\"/>"
            out += "<text x=\"\(x + 16)\" y=\"\(legendY + 11)\">\(escape(name))</text>\n"
            x += 30 + Double(name.count) * 7
        }
        return out + "</svg>\n"
    }

    private func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(value)))
        for step in [1.0, 2, 2.5, 5, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    /// Whole numbers on a panel of large values, two decimals on one of small values.
    private func format(_ value: Double, within highest: Double) -> String {
        highest >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
    }
    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
