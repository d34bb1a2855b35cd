import CVFIOIoctl
import RealDevice
import Testing

@Suite("real VFIO device backend (no hardware needed)")
struct RealDeviceTests {
    @Test("ioctl numbers are the kernel header's: _IO(';', 100 + n)")
    func ioctlNumbers() {
        func io(_ nr: UInt) -> UInt { UInt(UInt8(ascii: ";")) << 8 | (100 + nr) }
        #expect(mdevsim_vfio_ioctl_device_feature() == io(17))       // 0x3B75
        #expect(mdevsim_vfio_ioctl_device_reset() == io(11))         // 0x3B6F
        #expect(mdevsim_vfio_ioctl_precopy_info() == io(21))         // 0x3B79
        #expect(mdevsim_vfio_ioctl_device_feature() == 0x3b75)
    }

    @Test("structure layouts: feature header 8, mig_state 8, precopy_info 24 with dirty_bytes at 16")
    func layouts() {
        #expect(mdevsim_vfio_sizeof_feature_header() == 8)
        #expect(mdevsim_vfio_sizeof_mig_state() == 8)
        #expect(mdevsim_vfio_sizeof_precopy_info() == 24)
        #expect(mdevsim_vfio_offsetof_precopy_dirty_bytes() == 16)
    }

    @Test("a missing device and a file that is not a VFIO device give clear errors, not a crash")
    func clearErrors() {
        do {
            _ = try RealVFIODevice(path: "/dev/vfio/devices/vfio999")
            Issue.record("opened a device that does not exist")
        } catch {
            #expect("\(error)".contains("cannot open /dev/vfio/devices/vfio999"), "\(error)")
        }
        do {
            _ = try RealVFIODevice(path: "/dev/null")
            Issue.record("/dev/null taken for a VFIO device")
        } catch {
            #expect("\(error)".contains("not a VFIO device"), "\(error)")
        }
    }
}
