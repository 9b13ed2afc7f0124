//! A terminal just big enough to render what the client's progress display writes:
//! printable text, `\n`, `\r`, cursor up (`ESC [ n A`), erase line (`ESC [ 2 K`) and
//! erase to the end of the screen (`ESC [ J`). Anything else fails the test, so the
//! display cannot start using a sequence this model would misread.

/// The screen's rows after replaying some output.
#[derive(Debug, Default)]
pub(crate) struct Screen {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl Screen {
    /// Replays `output` from an empty screen.
    pub(crate) fn render(output: &str) -> Screen {
        let mut screen = Screen::default();
        screen.feed(output);
        screen
    }

    /// Replays more output.
    pub(crate) fn feed(&mut self, output: &str) {
        let mut chars = output.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\n' => {
                    self.row += 1;
                    self.col = 0;
                }
                '\r' => self.col = 0,
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "an escape that is not CSI");
                    let mut digits = String::new();
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        digits.push(d);
                    }
                    let n: usize = digits.parse().unwrap_or(1);
                    match chars.next() {
                        Some('A') => self.row = self.row.saturating_sub(n),
                        Some('K') if n == 2 => self.line().clear(),
                        Some('J') if digits.is_empty() => {
                            let col = self.col;
                            self.line().truncate(col);
                            self.rows.truncate(self.row + 1);
                        }
                        other => panic!("an escape this screen does not know: {other:?}"),
                    }
                }
                c => {
                    let col = self.col;
                    let line = self.line();
                    if line.len() <= col {
                        line.resize(col, ' ');
                        line.push(c);
                    } else {
                        line[col] = c;
                    }
                    self.col += 1;
                }
            }
        }
    }

    fn line(&mut self) -> &mut Vec<char> {
        if self.rows.len() <= self.row {
            self.rows.resize(self.row + 1, Vec::new());
        }
        &mut self.rows[self.row]
    }

    /// The rows as text, trailing blanks and empty trailing rows dropped.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }
}
