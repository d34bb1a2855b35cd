import Foundation

/// A small self-contained SVG bar chart (for `migrate --plot`).
public enum Plot {
    public static func bars(title: String, series: [(name: String, color: String, values: [Int])], xLabel: String) -> String {
        let (w, h, left, bottom, top) = (640.0, 360.0, 80.0, 50.0, 40.0)
        let count = series.map(\.values.count).max() ?? 0
        let maxValue = max(1, series.flatMap(\.values).max() ?? 1)
        let plotW = w - left - 20, plotH = h - top - bottom
        let group = plotW / Double(max(count, 1))
        let barW = group * 0.8 / Double(max(series.count, 1))
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="12">
        <text x="\(Int(left))" y="22" font-size="14">\(title)</text>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(h - bottom)" stroke="#333"/>
        <line x1="\(left)" y1="\(h - bottom)" x2="\(w - 20)" y2="\(h - bottom)" stroke="#333"/>
        <text x="\(Int(left + plotW / 2))" y="\(Int(h - 12))" text-anchor="middle">\(xLabel)</text>

        """
        for tick in 0...4 {
            let v = Double(maxValue) * Double(tick) / 4
            let y = h - bottom - plotH * Double(tick) / 4
            out += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, y + 4, human(v))
        }
        for (s, serie) in series.enumerated() {
            for (i, v) in serie.values.enumerated() {
                let bh = plotH * Double(v) / Double(maxValue)
                let x = left + group * Double(i) + group * 0.1 + barW * Double(s)
                out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@ %d: %d bytes</title></rect>\n",
                              x, h - bottom - bh, barW, bh, serie.color, serie.name, i + 1, v)
            }
            out += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%@\"/><text x=\"%.0f\" y=\"%.0f\">%@</text>\n",
                          w - 200, top + Double(s) * 16, serie.color, w - 185, top + Double(s) * 16 + 9, serie.name)
        }
        for i in 0..<count {
            out += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%d</text>\n", left + group * (Double(i) + 0.5), h - bottom + 16, i + 1)
        }
        return out + "</svg>\n"
    }

    static func human(_ v: Double) -> String {
        v >= 1e9 ? String(format: "%.1f GB", v / 1e9) : v >= 1e6 ? String(format: "%.1f MB", v / 1e6) : v >= 1e3 ? String(format: "%.0f kB", v / 1e3) : String(format: "%.0f B", v)
    }
}
