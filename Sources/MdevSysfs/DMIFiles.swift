import VirtualFS

/// `sys/devices/virtual/dmi/id`: the SMBIOS identity of the machine a Kaby Lake GT2 P630
/// ships in (a Dell Precision 3520 mobile workstation), as the kernel's dmi-id driver serves
/// it; libvirt's nodedev driver reads it for the `computer` device. Serial numbers and the
/// UUID are root-only (0400), as in drivers/firmware/dmi-id.c. A recorded or mirrored tree's
/// own DMI is kept.
enum DMIFiles {
    static let fields: [(name: String, value: String, mode: UInt32)] = [
        ("bios_vendor", "Dell Inc.", 0o444), ("bios_version", "2.21.0", 0o444), ("bios_date", "06/02/2022", 0o444),
        ("bios_release", "2.21", 0o444),
        ("sys_vendor", "Dell Inc.", 0o444), ("product_name", "Precision 3520", 0o444), ("product_version", "", 0o444),
        ("product_serial", "MDEVSIM1", 0o400), ("product_uuid", "4c4c4544-004d-4410-8053-b4c04f4d3032", 0o400),
        ("product_sku", "07BF", 0o444), ("product_family", "Precision", 0o444),
        ("board_vendor", "Dell Inc.", 0o444), ("board_name", "0H0M9K", 0o444), ("board_version", "A00", 0o444),
        ("board_serial", "/MDEVSIM1/CN1296372B0042/", 0o400), ("board_asset_tag", "", 0o444),
        ("chassis_vendor", "Dell Inc.", 0o444), ("chassis_type", "10", 0o444), ("chassis_version", "", 0o444),
        ("chassis_serial", "MDEVSIM1", 0o400), ("chassis_asset_tag", "", 0o444),
    ]

    /// dmi-id's modalias: the fields that identify the machine, colons and spaces escaped away.
    static var modalias: String {
        func v(_ n: String) -> String { (fields.first { $0.name == n }?.value ?? "").filter { $0 != " " && $0 != ":" } }
        return "dmi:bvn\(v("bios_vendor")):bvr\(v("bios_version")):bd\(v("bios_date")):br\(v("bios_release")):svn\(v("sys_vendor")):"
            + "pn\(v("product_name")):pvr\(v("product_version")):sku\(v("product_sku")):rvn\(v("board_vendor")):rn\(v("board_name")):"
            + "rvr\(v("board_version")):cvn\(v("chassis_vendor")):ct\(v("chassis_type")):cvr\(v("chassis_version")):"
    }

    static func add(relay: DeviceEventRelay, _ c: inout TreeContents) throws(FSError) {
        let dmi = try c.directories("sys/devices/virtual/dmi")
        guard !c.has("id", in: dmi) else { return }
        let id = try c.directory("id", in: dmi)
        for f in fields { try c.attribute(f.name, in: id, .constant(f.value + "\n"), permissions: f.mode) }
        try c.attribute("modalias", in: id, .constant(modalias + "\n"))
        try c.attribute("uevent", in: id, SysfsView.uevent("MODALIAS=\(modalias)\n", devpath: "sys/devices/virtual/dmi/id", subsystem: "dmi", relay: relay))
        try c.symlink("subsystem", in: id, to: "../../../../class/dmi")
        let power = try c.directory("power", in: id)
        try c.attribute("control", in: power, .constant("auto\n"))
        try c.attribute("runtime_status", in: power, .constant("unsupported\n"))
        let dmiClass = try c.directories("sys/class/dmi")
        try c.symlink("id", in: dmiClass, to: "../../devices/virtual/dmi/id")
    }
}
