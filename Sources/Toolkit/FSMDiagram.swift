import Foundation
import Migration

/// `mdevsim fsm`: the v2 state machine for a feature set, and the path the
/// kernel's table takes between two states.
public enum FSMDiagram {
    public static func states(_ f: MigrationFeatures) -> [MigrationState] {
        MigrationState.allCases.filter { s in
            s == .error || MigrationFSM.path(from: s, to: s, features: f) != nil
        }
    }

    /// The arcs a device with these features implements: single steps of the table.
    public static func arcs(_ f: MigrationFeatures) -> [(MigrationState, MigrationState)] {
        let usable = states(f).filter { $0 != .error }
        return usable.flatMap { a in usable.compactMap { b in
            a != b && MigrationFSM.nextState(from: a, to: b, features: f) == b ? (a, b) : nil
        } }
    }

    public static func text(_ f: MigrationFeatures, path: (MigrationState, MigrationState)?) -> String {
        var out = "features: \(f)\nstates: " + states(f).map(\.description).joined(separator: " ") + "\narcs:\n"
        for (a, b) in arcs(f) { out += "  \(a) -> \(b)\n" }
        if let (from, to) = path { out += describe(from, to, f) }
        return out
    }

    static func describe(_ from: MigrationState, _ to: MigrationState, _ f: MigrationFeatures) -> String {
        if let steps = MigrationFSM.path(from: from, to: to, features: f) {
            return "path \(from) -> \(to): " + ([from] + steps).map(\.description).joined(separator: " -> ") + "\n"
        }
        return "path \(from) -> \(to): refused (EINVAL)\n"
    }

    public static func dot(_ f: MigrationFeatures, path: (MigrationState, MigrationState)?) -> String {
        let highlighted = highlight(f, path)
        var out = "digraph vfio_migration {\n  label=\"VFIO v2 migration, features: \(f)\";\n  node [shape=box, style=rounded];\n"
        for s in states(f) { out += "  \(s)\(s == .error ? " [style=\"rounded,dashed\"]" : "");\n" }
        for (a, b) in arcs(f) {
            out += "  \(a) -> \(b)\(highlighted.contains("\(a)>\(b)") ? " [color=red, penwidth=2]" : "");\n"
        }
        return out + "}\n"
    }

    static func highlight(_ f: MigrationFeatures, _ path: (MigrationState, MigrationState)?) -> Set<String> {
        guard let (from, to) = path, let steps = MigrationFSM.path(from: from, to: to, features: f) else { return [] }
        let all = [from] + steps
        return Set(zip(all, all.dropFirst()).map { "\($0)>\($1)" })
    }

    /// A self-contained SVG: states on a circle, arcs as arrows, the path in red.
    public static func svg(_ f: MigrationFeatures, path: (MigrationState, MigrationState)?) -> String {
        let nodes = states(f)
        let (w, h, r) = (720.0, 560.0, 210.0)
        var pos: [MigrationState: (Double, Double)] = [:]
        for (i, s) in nodes.enumerated() {
            let angle = Double(i) / Double(nodes.count) * 2 * .pi - .pi / 2
            pos[s] = (w / 2 + r * 1.3 * cos(angle), h / 2 + r * sin(angle))
        }
        let highlighted = highlight(f, path)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="13">
        <defs><marker id="a" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker>
        <marker id="r" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#c00"/></marker></defs>
        <text x="10" y="20">VFIO v2 migration, features: \(f)\(path.map { " · path \($0.0) → \($0.1)" } ?? "")</text>

        """
        for (a, b) in arcs(f) {
            let (x1, y1) = pos[a]!, (x2, y2) = pos[b]!
            let (dx, dy) = (x2 - x1, y2 - y1), len = max(1, (dx * dx + dy * dy).squareRoot())
            // Offset both directions of an arc pair sideways so they do not overlap; stop short of the boxes.
            let (nx, ny) = (-dy / len * 6, dx / len * 6)
            let (sx, sy) = (x1 + dx / len * 58 + nx, y1 + dy / len * 22 + ny)
            let (ex, ey) = (x2 - dx / len * 58 + nx, y2 - dy / len * 22 + ny)
            let red = highlighted.contains("\(a)>\(b)")
            out += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"%d\" marker-end=\"url(#%@)\"/>\n",
                          sx, sy, ex, ey, red ? "#c00" : "#555", red ? 3 : 1, red ? "r" : "a")
        }
        for s in nodes {
            let (x, y) = pos[s]!
            out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"112\" height=\"30\" rx=\"8\" fill=\"%@\" stroke=\"#333\"%@/>\n",
                          x - 56, y - 15, s == .error ? "#fee" : "#eef", s == .error ? " stroke-dasharray=\"4\"" : "")
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", x, y + 4, s.description)
        }
        return out + "</svg>\n"
    }
}
