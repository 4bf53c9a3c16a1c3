//! `certray audit`: every signature and authentication the bridge made.

use super::table::Table;
use super::{Ctx, Failure, print_json, state_dir};

pub fn audit(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let records = crate::core::audit::read_audit(&state_dir()?);
    if json {
        print_json(&records);
        return Ok(());
    }
    let lang = ctx.lang;
    let mut t = Table::new(&[
        lang.pick("时间", "Time"),
        lang.pick("来源", "Origin"),
        lang.pick("操作", "Operation"),
        lang.pick("证书编号", "Certificate ID"),
        lang.pick("格式", "Format"),
        lang.pick("字节", "Bytes"),
        lang.pick("结果", "Result"),
    ]);
    // What a page sent can hold control characters: escaped, they cannot forge a row.
    for r in records.iter().map(crate::core::AuditRecord::escaped) {
        t.row(vec![
            r.time,
            r.origin,
            r.operation,
            r.certificate_id,
            r.format,
            r.bytes.to_string(),
            r.result,
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
