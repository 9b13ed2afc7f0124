//! The results: one row per scenario and figure, one column per server, each cell the
//! median over the rounds with its spread and ours ÷ it; rendered as one markdown
//! table for the terminal and for docs/benchmarks.md.

use super::stats::Summary;

/// The servers, in column order. "ours" is the layered stack: poetry-server for the
/// poetry scenarios, the protocol crate's echo server for echo and idle.
pub(crate) const SERVERS: [&str; 11] = [
    "ours",
    "ours-copy",
    "ours-kbuf",
    "raw-mio",
    "raw-mio-sendfile",
    "bare-sendfile",
    "bare-pread",
    "tokio-multi",
    "tokio-current",
    "twisted",
    "cat",
];

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

impl Better {
    fn arrow(self) -> &'static str {
        match self {
            Better::Higher => "↑",
            Better::Lower => "↓",
        }
    }
}

/// One server's samples of one figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cell {
    pub(crate) samples: Vec<f64>,
    /// Rounds that failed, and why the first one did.
    pub(crate) failures: usize,
    pub(crate) first_failure: Option<String>,
}

/// One figure of one scenario across the servers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Stable name the goals look rows up by, e.g. `bulk.mb_per_s`.
    pub(crate) key: String,
    /// The scenario as the table shows it, e.g. `bulk, 256 MiB`.
    pub(crate) scenario: String,
    /// What is measured, with its unit.
    pub(crate) figure: String,
    pub(crate) better: Better,
    pub(crate) cells: Vec<(String, Cell)>,
}

impl Row {
    /// The cell of `server`, if it ran.
    pub(crate) fn cell(&self, server: &str) -> Option<&Cell> {
        self.cells.iter().find(|(s, _)| s == server).map(|(_, c)| c)
    }
}

/// Every row, in the order they were first recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    pub(crate) rows: Vec<Row>,
}

impl Table {
    fn cell_mut(
        &mut self,
        (key, scenario, figure, better): (&str, &str, &str, Better),
        server: &str,
    ) -> &mut Cell {
        let row = match self.rows.iter().position(|r| r.key == key) {
            Some(i) => &mut self.rows[i],
            None => {
                self.rows.push(Row {
                    key: key.to_owned(),
                    scenario: scenario.to_owned(),
                    figure: figure.to_owned(),
                    better,
                    cells: Vec::new(),
                });
                self.rows.last_mut().expect("just pushed")
            }
        };
        let i = match row.cells.iter().position(|(s, _)| s == server) {
            Some(i) => i,
            None => {
                row.cells.push((server.to_owned(), Cell::default()));
                row.cells.len() - 1
            }
        };
        &mut row.cells[i].1
    }

    /// Adds one round's figure.
    pub(crate) fn record(&mut self, figure: FigureId<'_>, server: &str, value: f64) {
        self.cell_mut(figure, server).samples.push(value);
    }

    /// Notes a round that produced no figure.
    pub(crate) fn fail(&mut self, figure: FigureId<'_>, server: &str, why: &str) {
        let cell = self.cell_mut(figure, server);
        cell.failures += 1;
        cell.first_failure.get_or_insert_with(|| why.to_owned());
    }

    /// The row `key`.
    pub(crate) fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The summary of `server` in row `key`.
    pub(crate) fn summary(&self, key: &str, server: &str) -> Option<Summary> {
        Summary::of(&self.row(key)?.cell(server)?.samples)
    }

    /// The median of `server` in row `key`.
    pub(crate) fn median(&self, key: &str, server: &str) -> Option<f64> {
        self.summary(key, server).map(|s| s.median)
    }

    /// How many rounds failed, over every cell.
    pub(crate) fn failures(&self) -> usize {
        self.rows
            .iter()
            .flat_map(|r| r.cells.iter())
            .map(|(_, c)| c.failures)
            .sum()
    }

    /// The table as markdown, columns padded so the text reads as a table too.
    pub(crate) fn to_markdown(&self) -> String {
        let servers: Vec<&str> = SERVERS
            .iter()
            .copied()
            .filter(|s| self.rows.iter().any(|r| r.cell(s).is_some()))
            .collect();
        let mut lines: Vec<Vec<String>> = Vec::new();
        let mut header = vec!["scenario".to_owned(), "figure".to_owned()];
        header.extend(servers.iter().map(|s| (*s).to_owned()));
        lines.push(header);
        for row in &self.rows {
            let ours = row
                .cell("ours")
                .and_then(|c| Summary::of(&c.samples))
                .map(|s| s.median);
            let mut line = vec![
                row.scenario.clone(),
                format!("{} {}", row.figure, row.better.arrow()),
            ];
            for server in &servers {
                line.push(match row.cell(server) {
                    None => "—".to_owned(),
                    Some(cell) => render_cell(cell, if *server == "ours" { None } else { ours }),
                });
            }
            lines.push(line);
        }
        let mut right = vec![false, false];
        right.extend(servers.iter().map(|_| true));
        render_aligned(&lines, &right)
    }

    /// Why rounds failed, one markdown bullet per failing cell.
    pub(crate) fn failure_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for row in &self.rows {
            for (server, cell) in &row.cells {
                if let Some(why) = &cell.first_failure {
                    let line = format!(
                        "{}, {}, {server}: {} of {} rounds failed (first: {why})",
                        row.scenario,
                        row.figure,
                        cell.failures,
                        cell.failures + cell.samples.len()
                    );
                    if !notes.contains(&line) {
                        notes.push(line);
                    }
                }
            }
        }
        notes
    }
}

/// The key, scenario label, figure label and direction of one row.
pub(crate) type FigureId<'a> = (&'a str, &'a str, &'a str, Better);

/// A spread wider than this share of the median is marked `*`.
pub(crate) const NOISY: f64 = 0.25;

/// `median (min–max) ×ratio`: the spread only with two samples or more (marked `*` when
/// wider than [`NOISY`]), the ratio (ours ÷ this) only for a peer when ours has a
/// figure.
pub(crate) fn render_cell(cell: &Cell, ours: Option<f64>) -> String {
    let Some(s) = Summary::of(&cell.samples) else {
        return "failed".to_owned();
    };
    let mut text = format_number(s.median);
    if s.count > 1 {
        let mark = if s.max - s.min > NOISY * s.median.abs() {
            "*"
        } else {
            ""
        };
        text += &format!(" ({}–{}){mark}", format_number(s.min), format_number(s.max));
    }
    if let Some(ours) = ours {
        if s.median != 0.0 {
            text += &format!(" ×{:.2}", ours / s.median);
        }
    }
    if cell.failures > 0 {
        text += &format!(" ({} failed)", cell.failures);
    }
    text
}

/// A figure with about three significant digits: `2,310`, `415`, `41.5`, `4.15`.
pub(crate) fn format_number(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        let rounded = x.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A whole number with thousands separators: `50`, `10,000`.
pub(crate) fn format_count(n: u64) -> String {
    if n < 100 {
        n.to_string()
    } else {
        format_number(n as f64)
    }
}

/// Markdown table lines with every column padded to its widest cell; `right` columns
/// are right-aligned (and marked so in the separator line).
pub(crate) fn render_aligned(lines: &[Vec<String>], right: &[bool]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        lines
            .iter()
            .filter_map(|l| l.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
            .max(3)
    };
    let widths: Vec<usize> = (0..columns).map(width).collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push('|');
        for (c, w) in widths.iter().enumerate() {
            let text = line.get(c).map_or("", String::as_str);
            let pad = w - text.chars().count();
            if right.get(c).copied().unwrap_or(false) {
                out += &format!(" {}{text} |", " ".repeat(pad));
            } else {
                out += &format!(" {text}{} |", " ".repeat(pad));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                if right.get(c).copied().unwrap_or(false) {
                    out += &format!("{}:|", "-".repeat(w + 1));
                } else {
                    out += &format!("{}|", "-".repeat(w + 2));
                }
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BULK: FigureId<'static> = ("bulk.mb_per_s", "bulk, 4 MiB", "MB/s", Better::Higher);

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(format_number(2310.4), "2,310");
        assert_eq!(format_number(1_234_567.0), "1,234,567");
        assert_eq!(format_number(415.49), "415");
        assert_eq!(format_number(41.54), "41.5");
        assert_eq!(format_number(4.154), "4.15");
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_count(50), "50");
        assert_eq!(format_count(10_000), "10,000");
        assert_eq!(format_number(-1500.0), "-1,500");
    }

    #[test]
    fn a_cell_shows_median_spread_and_ours_over_it() {
        let cell = Cell {
            samples: vec![2000.0, 2200.0, 1900.0],
            ..Cell::default()
        };
        assert_eq!(render_cell(&cell, None), "2,000 (1,900–2,200)");
        assert_eq!(
            render_cell(&cell, Some(1900.0)),
            "2,000 (1,900–2,200) ×0.95"
        );
        let one = Cell {
            samples: vec![5.0],
            failures: 2,
            first_failure: Some("timed out".into()),
        };
        assert_eq!(render_cell(&one, None), "5.00 (2 failed)");
        let none = Cell {
            failures: 1,
            ..Cell::default()
        };
        assert_eq!(render_cell(&none, Some(1.0)), "failed");
    }

    #[test]
    fn markdown_has_a_column_per_server_that_ran_in_fixed_order() {
        let mut t = Table::default();
        t.record(BULK, "raw-mio", 2000.0);
        t.record(BULK, "ours", 1900.0);
        t.record(
            ("timers.schedule_ns", "timers", "ns/schedule", Better::Lower),
            "ours",
            41.0,
        );
        t.fail(BULK, "twisted", "no venv");
        let md = t.to_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4, "{md}");
        let header: Vec<&str> = lines[0].split('|').map(str::trim).collect();
        assert_eq!(
            header,
            ["", "scenario", "figure", "ours", "raw-mio", "twisted", ""]
        );
        assert!(lines[1].starts_with("|----"), "{md}");
        assert!(lines[1].ends_with(":|"), "numbers right-aligned: {md}");
        let bulk: Vec<&str> = lines[2].split('|').map(str::trim).collect();
        assert_eq!(
            bulk,
            [
                "",
                "bulk, 4 MiB",
                "MB/s ↑",
                "1,900",
                "2,000 ×0.95",
                "failed",
                ""
            ]
        );
        let timers: Vec<&str> = lines[3].split('|').map(str::trim).collect();
        assert_eq!(timers[3..6], ["41.0", "—", "—"]);
        // Every line is as wide as the header.
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{md}");
        assert_eq!(t.failures(), 1);
        assert_eq!(
            t.failure_notes(),
            ["bulk, 4 MiB, MB/s, twisted: 1 of 1 rounds failed (first: no venv)"]
        );
    }

    #[test]
    fn rows_are_found_by_key() {
        let mut t = Table::default();
        t.record(BULK, "ours", 3.0);
        t.record(BULK, "ours", 1.0);
        t.record(BULK, "ours", 2.0);
        assert_eq!(t.median("bulk.mb_per_s", "ours"), Some(2.0));
        assert_eq!(t.median("bulk.mb_per_s", "raw-mio"), None);
        assert_eq!(t.median("poems", "ours"), None);
    }
}
