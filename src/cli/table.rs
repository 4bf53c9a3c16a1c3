//! A plain text table whose columns stay aligned with Chinese (double-width) text.

use unicode_width::UnicodeWidthStr;

/// Rows of cells under a header; render pads each column to its widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, columns separated by two spaces, no trailing blanks.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.width());
            }
        }
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                s.push_str(c);
                if i + 1 < cols {
                    s.push_str(&" ".repeat(widths[i] - c.width() + 2));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.header, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
        line(&rule, &mut out);
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_align() {
        let mut t = Table::new(&["名称", "x"]);
        t.row(vec!["北京云杉".into(), "1".into()]);
        t.row(vec!["ab".into(), "2".into()]);
        let out = t.render();
        let lines: Vec<&str> = out.lines().collect();
        // The second column starts at the same display column on every line.
        let col = |l: &str, needle: char| {
            let i = l.find(needle).unwrap();
            l[..i].width()
        };
        assert_eq!(col(lines[2], '1'), col(lines[3], '2'));
        assert_eq!(col(lines[0], 'x'), col(lines[2], '1'));
    }
}
