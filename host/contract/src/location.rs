/// A position in a source file, 1-based, as editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `source`.
    pub fn of_offset(source: &str, offset: usize) -> Self {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location { line, column }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_lines_and_characters() {
        let source = "ab\ncé d\n";
        assert_eq!(Location::of_offset(source, 0).to_string(), "1:1");
        assert_eq!(Location::of_offset(source, 3).to_string(), "2:1");
        // Inside the two bytes of `é`: the character's start.
        assert_eq!(Location::of_offset(source, 5).to_string(), "2:2");
        assert_eq!(Location::of_offset(source, 6).to_string(), "2:3");
        assert_eq!(Location::of_offset(source, 999).to_string(), "3:1");
    }
}
