import Foundation

/// Directories whose contents run as root: made 0700 and used only when they
/// are real directories (no link) owned by us and writable by no one else.
enum PrivateDirectory {
    static func make(_ path: String) throws {
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw CLIError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        try check(path)
    }

    static func check(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw CLIError("cannot use \(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw CLIError("refusing \(path): it is not a directory (a link or file there could point mdevctl's root callouts anywhere); remove it")
        }
        guard st.st_uid == geteuid() else {
            throw CLIError("refusing \(path): it belongs to uid \(st.st_uid), not to you (uid \(geteuid())); whoever made it could put callouts there that mdevctl runs as root. Remove it")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw CLIError("refusing \(path): its mode \(String(st.st_mode & 0o777, radix: 8)) lets others write in it, and mdevctl runs its callouts as root; chmod go-w \(path)")
        }
    }
}
