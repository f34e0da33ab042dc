//! Tables laid out as Docker's tabwriter does (minimum cell width 10, padding 3, the last column
//! left as is), so scripts that cut columns by position see the same layout.

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// A table of text cells; the first row is the header.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|s| s.to_string()).collect()] }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The laid-out text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            // The last cell of a row is not aligned, as tabwriter leaves text after the last tab.
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                widths[i] = widths[i].max((cell.chars().count() + PADDING).max(MIN_WIDTH));
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_like_tabwriter() {
        let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
        t.row(vec!["busybox".into(), "latest".into(), "a416a98b71e2".into(), "2 weeks ago".into(), "4.26MB".into()]);
        t.row(vec![
            "127.0.0.1:5000/app".into(),
            "1".into(),
            "0123456789ab".into(),
            "5 seconds ago".into(),
            "12MB".into(),
        ]);
        let want = "\
REPOSITORY           TAG       IMAGE ID       CREATED         SIZE
busybox              latest    a416a98b71e2   2 weeks ago     4.26MB
127.0.0.1:5000/app   1         0123456789ab   5 seconds ago   12MB
";
        assert_eq!(t.render(), want);
    }

    #[test]
    fn header_only_and_wide_characters() {
        let t = Table::new(&["CONTAINER ID", "NAMES"]);
        assert_eq!(t.render(), "CONTAINER ID   NAMES\n");
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["\"sh -c 'echo…\"".into(), "x".into()]);
        assert_eq!(t.render(), "A                B\n\"sh -c 'echo…\"   x\n");
    }
}
