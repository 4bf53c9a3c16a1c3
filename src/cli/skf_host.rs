//! `certray skf-host --library PATH` (hidden): the process certray starts per SKF library
//! ([`crate::token::skf::host`]). It answers certray over stdin and stdout, never a person.

use std::path::Path;

/// Run the host; returns its exit code.
pub fn main(library: &Path) -> i32 {
    crate::token::skf::host::run(library)
}
