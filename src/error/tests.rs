//! error tests: excerpts of echoed input, and the kind an I/O error keeps.

use super::*;

#[test]
fn long_input_is_cut_on_a_character_boundary_and_says_its_length() {
    assert_eq!(excerpt("short"), "short");
    let long = "é".repeat(100);
    let cut = excerpt(&long);
    assert!(cut.ends_with("... (200 bytes)"), "{cut}");
    assert!(cut.len() < 140, "{cut}");
    let err = Error::config("overlay_hijack_subnet", "x".repeat(1 << 20), "bad");
    assert!(err.to_string().len() < 300);
}

#[test]
fn an_io_error_keeps_its_kind_so_a_missing_file_differs_from_a_forbidden_one() {
    let missing = Error::io("reading x", io::Error::from_raw_os_error(2));
    let forbidden = Error::io("reading x", io::Error::from_raw_os_error(13));
    assert_eq!(missing.io_kind(), Some(io::ErrorKind::NotFound));
    assert_eq!(forbidden.io_kind(), Some(io::ErrorKind::PermissionDenied));
    assert_eq!(missing.code(), Code::Io);
    assert!(missing.to_string().starts_with("reading x: "), "{missing}");
    let other = Error::io_other("reading y", "larger than 4 MiB");
    assert_eq!(other.io_kind(), Some(io::ErrorKind::Other));
    assert_eq!(other.to_string(), "reading y: larger than 4 MiB");
    assert_eq!(Error::TryAgain("busy".into()).io_kind(), None);
}
