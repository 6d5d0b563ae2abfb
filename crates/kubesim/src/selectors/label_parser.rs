//! The lexer and parser of the label selector query syntax, a port of `labels/selector.go` so
//! errors read the same.

use super::requirement::{Operator, Requirement};
use super::validation::{invalid, label_key_errors};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    Eos,
    Ident,
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Gt,
    Lt,
    Bang,
    Open,
    Close,
    Comma,
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn special_token(s: &[u8]) -> Option<Tok> {
    Some(match s {
        b"=" => Tok::Equals,
        b"==" => Tok::DoubleEquals,
        b"!=" => Tok::NotEquals,
        b"!" => Tok::Bang,
        b"(" => Tok::Open,
        b")" => Tok::Close,
        b"," => Tok::Comma,
        b">" => Tok::Gt,
        b"<" => Tok::Lt,
        _ => return None,
    })
}

pub(super) fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i >= b.len() || b[i] == 0 {
            out.push((Tok::Eos, String::new()));
            return out;
        }
        if is_special(b[i]) {
            // Longest run of special characters that still forms a token ("!=", "==").
            let start = i;
            let mut best = (special_token(&b[i..=i]).unwrap_or(Tok::Eos), i + 1);
            let mut j = i + 1;
            while j < b.len() && is_special(b[j]) {
                match special_token(&b[start..=j]) {
                    Some(t) => best = (t, j + 1),
                    None => break,
                }
                j += 1;
            }
            out.push((
                best.0,
                String::from_utf8_lossy(&b[start..best.1]).into_owned(),
            ));
            i = best.1;
        } else {
            let start = i;
            while i < b.len()
                && b[i] != 0
                && !is_special(b[i])
                && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n')
            {
                i += 1;
            }
            let word = String::from_utf8_lossy(&b[start..i]).into_owned();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
}

pub(super) struct Parser {
    pub(super) tokens: Vec<(Tok, String)>,
    pub(super) pos: usize,
}

impl Parser {
    /// In a value position `in`/`notin` are plain identifiers.
    fn lookahead(&self, values: bool) -> (Tok, String) {
        let (t, l) = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        let t = if values && matches!(t, Tok::In | Tok::NotIn) {
            Tok::Ident
        } else {
            t
        };
        (t, l)
    }

    fn consume(&mut self, values: bool) -> (Tok, String) {
        let r = self.lookahead(values);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        r
    }

    pub(super) fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(true);
            match tok {
                Tok::Ident | Tok::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(true);
                    match t {
                        Tok::Eos => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(true);
                            if t2 != Tok::Ident && t2 != Tok::Bang {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::Eos => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut tok, mut lit) = self.consume(true);
        let mut op = None;
        if tok == Tok::Bang {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(true);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = label_key_errors(&lit);
        if !key_errs.is_empty() {
            return Err(invalid("<nil>", &lit, &key_errs));
        }
        let key = lit;
        let (next, _) = self.lookahead(true);
        if matches!(next, Tok::Eos | Tok::Comma) {
            return Requirement::new(&key, op.unwrap_or(Operator::Exists), Vec::new());
        }
        if op == Some(Operator::DoesNotExist) {
            // `!key=v`: the requirement ends at the key; the caller then rejects the `=`.
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        let (tok, lit) = self.consume(false);
        let op = match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(true);
        if tok != Tok::Open {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(true);
        match tok {
            Tok::Ident | Tok::Comma => {
                let s = self.identifiers()?;
                let (t, _) = self.consume(true);
                if t != Tok::Close {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::Close => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut s: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(true);
            match tok {
                Tok::Ident => {
                    s.push(lit);
                    let (t2, l2) = self.lookahead(true);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(s),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // "(,a" "a,)" "a,,b" all contribute an empty value, as in Go.
                    if s.is_empty() {
                        s.push(String::new());
                    }
                    let (t2, _) = self.lookahead(true);
                    if t2 == Tok::Close {
                        s.push(String::new());
                        return Ok(s);
                    }
                    if t2 == Tok::Comma {
                        self.consume(true);
                        s.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(true);
        if matches!(tok, Tok::Eos | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(true);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}
