//! netns::files tests: sysctl files held open for reading and writing.

use super::*;

#[test]
fn a_file_that_may_not_be_written_is_still_opened_for_reading() {
    assert!(not_writable(&io::Error::from_raw_os_error(libc::EROFS)));
    assert!(not_writable(&io::Error::from_raw_os_error(libc::EACCES)));
    assert!(not_writable(&io::Error::from_raw_os_error(libc::EPERM)));
    assert!(!not_writable(&io::Error::from_raw_os_error(libc::ENOENT)));
    assert!(!not_writable(&io::Error::from_raw_os_error(libc::EIO)));
}

#[test]
fn a_file_held_for_reading_reads_and_refuses_a_write() {
    // /proc/self/oom_score_adj reads as a number, like a sysctl; opened read-only, a
    // write through it fails (EBADF) instead of going anywhere.
    let key = SysctlKey::new("all", crate::model::SysctlName::RpFilter);
    let file = File::open("/proc/self/oom_score_adj").unwrap();
    assert!(read(&key, &file).is_ok());
    assert!(write(&key, &file, 0).is_err());
}
