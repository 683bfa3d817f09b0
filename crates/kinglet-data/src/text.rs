//! Numeric text tables (whitespace- or comma-separated), with errors that point at the
//! file and line, since the published datasets are hand-edited text files.

use std::path::Path;

use crate::DataError;

/// Reads a text file whole; `.gz` files are decompressed (compressed copies keep committed
/// fixtures small, and WISDM is distributed that way here).
pub fn read_text(path: &Path) -> Result<String, DataError> {
    if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path.display(), e))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| DataError::io(path.display(), e))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| DataError::io(path.display(), e))
}

fn tokens(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
}

/// Parses a table with exactly `columns` finite numbers per non-blank line, row-major.
/// Returns the values and the number of rows.
pub fn parse_float_table(
    text: &str,
    path: &str,
    columns: usize,
) -> Result<(Vec<f64>, usize), DataError> {
    let mut values = Vec::with_capacity(text.len() / 8);
    let mut rows = 0;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut found = 0;
        for token in tokens(line) {
            found += 1;
            if found > columns {
                continue;
            }
            let value: f64 = token.parse().map_err(|_| DataError::NotANumber {
                path: path.to_string(),
                line: line_no,
                column: found,
                text: token.chars().take(40).collect(),
            })?;
            if !value.is_finite() {
                return Err(DataError::NonFinite {
                    path: path.to_string(),
                    line: line_no,
                    column: found,
                    value,
                });
            }
            values.push(value);
        }
        if found != columns {
            return Err(DataError::ShortRow {
                path: path.to_string(),
                line: line_no,
                expected: columns,
                found,
            });
        }
        rows += 1;
    }
    Ok((values, rows))
}

/// Parses a table of integers, `columns` per non-blank line; each row comes with its
/// 1-based line number.
pub fn parse_int_table(
    text: &str,
    path: &str,
    columns: usize,
) -> Result<Vec<(usize, Vec<i64>)>, DataError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut row = Vec::with_capacity(columns);
        for (col, token) in tokens(line).enumerate() {
            let value: i64 = token.parse().map_err(|_| DataError::NotANumber {
                path: path.to_string(),
                line: line_no,
                column: col + 1,
                text: token.chars().take(40).collect(),
            })?;
            row.push(value);
        }
        if row.len() != columns {
            return Err(DataError::ShortRow {
                path: path.to_string(),
                line: line_no,
                expected: columns,
                found: row.len(),
            });
        }
        rows.push((line_no, row));
    }
    Ok(rows)
}

/// Parses `id name` lines (e.g. `activity_labels.txt`) into names ordered by id 1, 2, ….
pub fn parse_label_names(text: &str, path: &str) -> Result<Vec<String>, DataError> {
    let mut names: Vec<(i64, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let id_text = parts.next().unwrap_or("");
        let id: i64 = id_text.parse().map_err(|_| DataError::NotANumber {
            path: path.to_string(),
            line: index + 1,
            column: 1,
            text: id_text.to_string(),
        })?;
        let name = parts.next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            return Err(DataError::ShortRow {
                path: path.to_string(),
                line: index + 1,
                expected: 2,
                found: 1,
            });
        }
        names.push((id, name));
    }
    names.sort_by_key(|(id, _)| *id);
    for (i, (id, _)) in names.iter().enumerate() {
        if *id != i as i64 + 1 {
            return Err(DataError::BadFormat {
                path: path.to_string(),
                reason: format!(
                    "label ids must be 1, 2, … without gaps; found {id} at position {}",
                    i + 1
                ),
            });
        }
    }
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_commas_and_whitespace() {
        let (v, rows) = parse_float_table("1, 2,3\n  4 5\t6\n\n", "t", 3).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn short_row_names_line() {
        let err = parse_float_table("1 2 3\n4 5\n", "f.txt", 3).unwrap_err();
        assert_eq!(err.to_string(), "f.txt:2: expected 3 values, found 2");
    }

    #[test]
    fn nan_and_text_are_errors() {
        let err = parse_float_table("1 nan 3\n", "f.txt", 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NonFinite {
                    line: 1,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_float_table("1 2 3\n1 x 3\n", "f.txt", 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NotANumber {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
}
