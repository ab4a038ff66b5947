//! STL, binary and ASCII. Binary is told from ASCII by the size rule (84 + 50·n bytes), not by the word `solid`,
//! which many binary exporters put at the start of their header.

use rayon::prelude::*;

use crate::mesh::{Format, Mesh};
use crate::units::Units;
use crate::weld::F32Key;
use crate::{Limits, ModelError, Warning};

const HEADER: usize = 80;
const RECORD: usize = 50;

/// Bytes of the beginning [`detect`] looks at: the header, the count, and 512 bytes of what follows.
pub(crate) const HEAD_BYTES: usize = HEADER + 512;

/// Binary when the declared triangle count matches the length exactly; otherwise ASCII when the text starts with
/// `solid` and what follows the header looks like text; otherwise binary when the file holds at least the
/// triangles it declares (the bytes after them are reported when parsed). Anything else is not an STL.
pub(crate) fn detect(head: &[u8], len: u64) -> Result<Format, ModelError> {
    let declared = declared_count(head);
    if let Some(n) = declared {
        if (HEADER as u64 + 4).checked_add(n * RECORD as u64) == Some(len) {
            return Ok(Format::StlBinary);
        }
    }
    // A binary file with a `solid` header and a stray byte at the end is common; its body is not text.
    let body = &head[head.len().min(HEADER)..head.len().min(HEAD_BYTES)];
    let looks_like_text = body.iter().all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if starts_with_solid(head) && looks_like_text {
        return Ok(Format::StlAscii);
    }
    match declared {
        None => Err(ModelError::UnknownFormat {
            hint: format!(
                "{len} bytes is too short for a binary STL (at least 84), and the file is not ASCII STL \
                 ('solid ...'), GLB or glTF JSON"
            ),
        }),
        Some(0) => Err(ModelError::UnknownFormat {
            hint: format!(
                "it is not GLB or glTF JSON, not ASCII STL ('solid ...'), and as a binary STL its header declares \
                 0 triangles yet {len} bytes follow"
            ),
        }),
        Some(n) => {
            let needed = HEADER as u64 + 4 + n * RECORD as u64;
            if needed < len {
                Ok(Format::StlBinary)
            } else {
                Err(ModelError::StlTruncated { declared: n, needed, actual: len })
            }
        }
    }
}

pub(crate) fn starts_with_solid(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let word = &text[start..];
    word.len() >= 5 && word[..5].eq_ignore_ascii_case(b"solid") && word.get(5).is_none_or(|b| b.is_ascii_whitespace())
}

fn declared_count(bytes: &[u8]) -> Option<u64> {
    let raw: [u8; 4] = bytes.get(HEADER..HEADER + 4)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(raw)))
}

#[cfg(test)]
fn parse(bytes: &[u8], units: Units, limits: &Limits) -> Result<Mesh, ModelError> {
    match crate::detect(bytes)? {
        Format::StlAscii => parse_ascii(bytes, units, limits),
        _ => parse_binary(bytes, units, limits),
    }
}

pub(crate) fn parse_binary(bytes: &[u8], units: Units, limits: &Limits) -> Result<Mesh, ModelError> {
    let Some(declared) = declared_count(bytes) else {
        return Err(ModelError::UnknownFormat {
            hint: format!(
                "{} bytes is too short for a binary STL (at least 84) and the text does not start with 'solid'",
                bytes.len()
            ),
        });
    };
    let needed = HEADER as u64 + 4 + declared * RECORD as u64;
    let actual = bytes.len() as u64;
    if actual < needed {
        return Err(ModelError::StlTruncated { declared, needed, actual });
    }
    if declared == 0 {
        return Err(ModelError::NoTriangles { detail: ": the binary STL header declares 0 triangles".into() });
    }
    if declared > limits.max_triangles {
        return Err(ModelError::TooManyTriangles { count: declared, limit: limits.max_triangles });
    }
    let n = declared as usize;
    let body = &bytes[HEADER + 4..HEADER + 4 + n * RECORD];
    // Where a corner's 12 bytes start in the body: its record, past the 12-byte normal.
    let offset = |corner: usize| (corner / 3) * RECORD + 12 + (corner % 3) * 12;
    let key = |corner: usize| {
        let at = offset(corner);
        let p: &[u8; 12] = body[at..at + 12].try_into().expect("12 bytes");
        let f = |o: usize| u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
        F32Key::from_bits([f(0), f(4), f(8)])
    };
    let (mut mesh, _) = Mesh::from_soup(Format::StlBinary, units, n * 3, key, |c| format!("triangle {}", c / 3))?;
    if actual > needed {
        mesh.warnings.push(Warning::new(
            "trailing_bytes",
            format!("{} bytes after the {declared} declared triangles were ignored", actual - needed),
        ));
    }
    Ok(mesh)
}

/// Target size of the pieces an ASCII file is cut into for parallel parsing.
const PIECE: usize = 1 << 20;

pub(crate) fn parse_ascii(bytes: &[u8], units: Units, limits: &Limits) -> Result<Mesh, ModelError> {
    // Cut at the start of a line whose first word is `facet`, so every piece holds whole facets.
    let mut cuts = vec![0];
    let mut at = PIECE;
    while at < bytes.len() {
        match next_facet_line(bytes, at) {
            Some(cut) => {
                cuts.push(cut);
                at = cut + PIECE;
            }
            None => break,
        }
    }
    cuts.push(bytes.len());
    let pieces: Vec<Result<Piece, (usize, String)>> =
        cuts.par_windows(2).map(|w| parse_piece(&bytes[w[0]..w[1]], w[0])).collect();

    let mut corners: Vec<[f32; 3]> = Vec::new();
    let mut total = 0u64;
    let mut state_after = State::Between;
    for piece in &pieces {
        match piece {
            Ok(p) => {
                total += p.corners.len() as u64 / 3;
                state_after = p.end;
            }
            Err((offset, message)) => {
                return Err(ModelError::StlSyntax { line: line_of(bytes, *offset), message: message.clone() })
            }
        }
    }
    if total > limits.max_triangles {
        return Err(ModelError::TooManyTriangles { count: total, limit: limits.max_triangles });
    }
    if total == 0 {
        return Err(ModelError::NoTriangles { detail: ": the ASCII STL has no facets".into() });
    }
    corners.reserve_exact(total as usize * 3);
    for piece in pieces.into_iter().flatten() {
        corners.extend_from_slice(&piece.corners);
    }
    let (mut mesh, _) = Mesh::from_soup(
        Format::StlAscii,
        units,
        corners.len(),
        |c| F32Key::from_f32(corners[c]),
        |c| format!("facet {}", c / 3 + 1),
    )?;
    if state_after != State::AfterEndsolid {
        mesh.warnings.push(Warning::new(
            "missing_endsolid",
            "the ASCII STL does not end with 'endsolid': the file may be truncated",
        ));
    }
    Ok(mesh)
}

/// The start of the first line at or after `from` whose first word is `facet`.
fn next_facet_line(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        let nl = i + bytes[i..].iter().position(|&b| b == b'\n')?;
        let line = nl + 1;
        let word = bytes[line..].iter().position(|b| *b != b' ' && *b != b'\t').map(|p| line + p)?;
        if bytes.len() >= word + 5 && bytes[word..word + 5].eq_ignore_ascii_case(b"facet") {
            return Some(line);
        }
        i = line;
    }
    None
}

fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Between,
    AfterEndsolid,
}

struct Piece {
    corners: Vec<[f32; 3]>,
    end: State,
}

/// Splits a piece into words, remembering where each starts.
struct Words<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        let t = self.text;
        while self.at < t.len() && t[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        if self.at == t.len() {
            return None;
        }
        let start = self.at;
        while self.at < t.len() && !t[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        Some((start, &t[start..self.at]))
    }

    /// Skips to the end of the current line (names after `solid`, the normal after `facet`).
    fn skip_line(&mut self) {
        match self.text[self.at..].iter().position(|&b| b == b'\n') {
            Some(p) => self.at += p + 1,
            None => self.at = self.text.len(),
        }
    }
}

/// Parses whole facets; an error carries the absolute byte offset of the offending word.
fn parse_piece(text: &[u8], base: usize) -> Result<Piece, (usize, String)> {
    let mut words = Words { text, at: 0 };
    let mut corners = Vec::with_capacity(text.len() / 80);
    let mut end = State::Between;
    let expect = |words: &mut Words, what: &[u8], context: &str| -> Result<usize, (usize, String)> {
        match words.next() {
            Some((at, w)) if w.eq_ignore_ascii_case(what) => Ok(at),
            Some((at, w)) => {
                Err((base + at, format!("expected '{}' {context}, found '{}'", String::from_utf8_lossy(what), show(w))))
            }
            None => Err((
                base + text.len(),
                format!(
                    "the file ends where '{}' was expected {context}: it is truncated",
                    String::from_utf8_lossy(what)
                ),
            )),
        }
    };
    while let Some((at, word)) = words.next() {
        if word.eq_ignore_ascii_case(b"solid") {
            words.skip_line();
            end = State::Between;
        } else if word.eq_ignore_ascii_case(b"endsolid") {
            words.skip_line();
            end = State::AfterEndsolid;
        } else if word.eq_ignore_ascii_case(b"facet") {
            end = State::Between;
            // The normal is recomputed from the corners; exporters write anything there, even 'nan'.
            words.skip_line();
            expect(&mut words, b"outer", "after 'facet normal ...'")?;
            expect(&mut words, b"loop", "after 'outer'")?;
            for _ in 0..3 {
                expect(&mut words, b"vertex", "(a facet has three vertices)")?;
                let mut p = [0f32; 3];
                for c in &mut p {
                    *c = number(&mut words, base, text.len())?;
                }
                corners.push(p);
            }
            expect(&mut words, b"endloop", "after three vertices (only triangles are allowed)")?;
            expect(&mut words, b"endfacet", "after 'endloop'")?;
        } else {
            return Err((base + at, format!("expected 'facet', 'solid' or 'endsolid', found '{}'", show(word))));
        }
    }
    Ok(Piece { corners, end })
}

fn number(words: &mut Words, base: usize, len: usize) -> Result<f32, (usize, String)> {
    let Some((at, w)) = words.next() else {
        return Err((base + len, "the file ends inside a vertex: it is truncated".into()));
    };
    let v = std::str::from_utf8(w)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .ok_or_else(|| (base + at, format!("expected a number, found '{}'", show(w))))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err((base + at, format!("coordinate '{}' is not a finite number", show(w))))
    }
}

/// A word for an error message: at most 40 characters, never raw control bytes.
fn show(w: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&w[..w.len().min(40)]).chars().filter(|c| !c.is_control()).collect();
    if w.len() > 40 {
        format!("{s}...")
    } else {
        s
    }
}

/// A binary STL of a mesh's triangles (positions as f32 in millimetres); for tests and generated benchmarks.
pub fn to_binary_stl(mesh: &Mesh) -> Vec<u8> {
    let mut out = Vec::with_capacity(84 + 50 * mesh.triangles.len());
    let mut header = [b' '; 80];
    header[..21].copy_from_slice(b"binary STL from assay");
    out.extend_from_slice(&header);
    out.extend_from_slice(&(mesh.triangles.len() as u32).to_le_bytes());
    for t in &mesh.triangles {
        out.extend_from_slice(&[0u8; 12]);
        for &v in t {
            for c in mesh.positions[v as usize] {
                out.extend_from_slice(&(c as f32).to_le_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    out
}

/// An ASCII STL of a mesh's triangles; for tests and generated benchmarks.
pub fn to_ascii_stl(mesh: &Mesh, name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64 + 260 * mesh.triangles.len());
    let _ = writeln!(out, "solid {name}");
    for t in &mesh.triangles {
        out.push_str("  facet normal 0 0 0\n    outer loop\n");
        for &v in t {
            let [x, y, z] = mesh.positions[v as usize].map(|c| c as f32);
            let _ = writeln!(out, "      vertex {x:e} {y:e} {z:e}");
        }
        out.push_str("    endloop\n  endfacet\n");
    }
    let _ = writeln!(out, "endsolid {name}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    const TRIANGLE: &str = "solid t\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\n\
                            endloop\nendfacet\nendsolid t\n";

    fn ascii_err(text: &str) -> ModelError {
        parse(text.as_bytes(), Units::Mm, &limits()).unwrap_err()
    }

    #[test]
    fn binary_with_solid_header_is_binary() {
        let mut bytes = vec![b' '; 80];
        bytes[..5].copy_from_slice(b"solid");
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&[0; 12]);
        for p in [[0f32, 0., 0.], [1., 0., 0.], [0., 1., 0.]] {
            for c in p {
                bytes.extend_from_slice(&c.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(detect(&bytes, bytes.len() as u64), Ok(Format::StlBinary));
        let m = parse(&bytes, Units::Mm, &limits()).expect("binary");
        assert_eq!(m.triangles.len(), 1);
        assert_eq!(m.format, Some(Format::StlBinary));
    }

    #[test]
    fn ascii_any_case_tabs_crlf_and_several_solids() {
        let text = "SOLID a\r\n\tFACET NORMAL 0 0 1\r\n\t\tOuter Loop\r\n\t\t\tVERTEX 0 0 0\r\n\t\t\tvertex 1 0 0\r\n\
                    vertex 0 1 0\r\nENDLOOP\r\nendFacet\r\nENDSOLID a\r\nsolid b\nfacet normal nan nan nan\nouter loop\n\
                    vertex 0 0 1\nvertex 1 0 1\nvertex 0 1 1\nendloop\nendfacet\nendsolid b";
        let m = parse(text.as_bytes(), Units::Mm, &limits()).expect("ascii");
        assert_eq!(m.triangles.len(), 2);
        assert_eq!(m.positions.len(), 6);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn ascii_errors_name_the_line() {
        let e = ascii_err(&TRIANGLE.replace("vertex 1 0 0", "vertex 1 zero 0"));
        assert_eq!(e.code(), "stl_syntax");
        assert_eq!(e.to_string(), "ASCII STL line 5: expected a number, found 'zero'");

        let e = ascii_err(&TRIANGLE.replace("endloop", "vertex 1 1 1\nendloop"));
        assert_eq!(
            e.to_string(),
            "ASCII STL line 7: expected 'endloop' after three vertices (only triangles are allowed), found 'vertex'"
        );

        let e = ascii_err(&TRIANGLE[..60]);
        assert!(e.to_string().contains("truncated"), "{e}");

        let e = ascii_err(&TRIANGLE.replace("vertex 0 1 0", "vertex 0 inf 0"));
        assert_eq!(e.to_string(), "ASCII STL line 6: coordinate 'inf' is not a finite number");
    }

    #[test]
    fn ascii_without_endsolid_warns() {
        let m =
            parse(TRIANGLE.trim_end().trim_end_matches("endsolid t").as_bytes(), Units::Mm, &limits()).expect("ascii");
        assert_eq!(m.warnings[0].code, "missing_endsolid");
    }

    #[test]
    fn binary_with_solid_header_and_a_trailing_byte_is_binary_with_a_warning() {
        let mut mesh = crate::synth::ring_band(8.0, 10.0, 2.0, 8, 4);
        mesh.positions.iter_mut().for_each(|p| p[2] += 0.25);
        let mut bytes = to_binary_stl(&mesh);
        bytes[..6].copy_from_slice(b"solid ");
        bytes.push(b'\n');
        let m = parse(&bytes, Units::Mm, &limits()).expect("binary");
        assert_eq!(m.format, Some(Format::StlBinary));
        assert_eq!(m.triangles.len(), 64);
        assert_eq!(m.warnings[0].code, "trailing_bytes");
    }

    #[test]
    fn empty_solid_has_no_triangles() {
        assert_eq!(ascii_err("solid x\nendsolid x\n").code(), "no_triangles");
    }

    #[test]
    fn truncated_binary_says_how_many_bytes() {
        let mut bytes = vec![0u8; 80];
        bytes.extend_from_slice(&1000u32.to_le_bytes());
        bytes.extend_from_slice(&[0; 100]);
        let e = parse(&bytes, Units::Mm, &limits()).unwrap_err();
        assert_eq!(e.code(), "stl_truncated");
        assert!(e.to_string().contains("declares 1000 triangles, which needs 50084 bytes, but the file has 184"));
    }

    #[test]
    fn a_huge_declared_count_allocates_nothing() {
        let mut bytes = vec![0u8; 80];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&bytes, Units::Mm, &limits()).unwrap_err().code(), "stl_truncated");
    }

    #[test]
    fn bytes_that_are_no_model_are_told_from_the_head() {
        // Random bytes: not an STL by any reading, whatever their length (the gateway's 415).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let random: Vec<u8> = (0..3000).map(|_| (crate::xorshift(&mut x) >> 24) as u8).collect();
        let e = crate::detect_head(&random[..HEAD_BYTES], 3000).unwrap_err();
        assert!(matches!(e.code(), "unknown_format" | "stl_truncated"), "{e}");
        let zeros = vec![0u8; 3000];
        assert_eq!(crate::detect(&zeros).unwrap_err().code(), "unknown_format");
        assert_eq!(crate::detect(b"GIF89a").unwrap_err().code(), "unknown_format");
        // A binary STL with bytes after its triangles is still one; the head alone decides.
        let mut one = to_binary_stl(&crate::synth::ring_band(8.0, 10.0, 2.0, 8, 4));
        one.extend_from_slice(b"\r\n");
        assert_eq!(crate::detect_head(&one[..HEAD_BYTES], one.len() as u64), Ok(Format::StlBinary));
    }

    #[test]
    fn pieces_cut_at_facets_give_the_same_mesh() {
        // Large enough for several pieces.
        let mesh = crate::synth::ring_band(8.0, 10.0, 2.0, 600, 40);
        let text = to_ascii_stl(&mesh, "ring");
        assert!(text.len() > 3 * PIECE);
        let m = parse(text.as_bytes(), Units::Mm, &limits()).expect("ascii");
        assert_eq!(m.triangles.len(), mesh.triangles.len());
        let bin = parse(&to_binary_stl(&mesh), Units::Mm, &limits()).expect("binary");
        assert_eq!(m.positions, bin.positions);
        assert_eq!(m.triangles, bin.triangles);
    }
}
