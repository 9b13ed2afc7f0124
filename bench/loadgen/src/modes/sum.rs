//! `sum`: the FNV-1a 64 of a file, to pass as `--expect-sum`.

use crate::cli::SumArgs;
use crate::fnv::{fnv1a64, format_sum};
use crate::json::Object;
use crate::{Error, Report};

pub(crate) fn run(args: &SumArgs) -> Result<Report, Error> {
    let bytes = std::fs::read(&args.file).map_err(Error::setup("read the file to sum"))?;
    let mut fields = Object::new();
    fields
        .field("bytes", bytes.len())
        .field("sum", format_sum(fnv1a64(&bytes)));
    Ok(Report::new("sum", None, fields))
}
