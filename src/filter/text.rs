//! cql2-text: a tokenizer and a recursive-descent parser following the CQL2 BNF
//! (OR binds loosest, then AND, then NOT).

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};

use super::{CmpOp, Expr, FilterError, Scalar, SpatialOp, time};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
    Op(CmpOp),
    End,
}

struct Lexer {
    toks: Vec<(Tok, usize)>,
}

fn syntax(pos: usize, msg: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        pos,
        msg: msg.into(),
    }
}

fn tokenize(src: &str) -> Result<Lexer, FilterError> {
    let cs: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let start = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            '<' | '>' => {
                let next = cs.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('>')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    _ => (CmpOp::Gt, 1),
                };
                i += len;
                Tok::Op(op)
            }
            '\'' | '"' => {
                // Both quote kinds escape themselves by doubling.
                let mut s = String::new();
                i += 1;
                loop {
                    match cs.get(i) {
                        None => {
                            return Err(syntax(
                                start,
                                format!("the text starting here has no closing {c}"),
                            ));
                        }
                        Some(&q) if q == c && cs.get(i + 1) == Some(&c) => {
                            s.push(c);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&o) => {
                            s.push(o);
                            i += 1;
                        }
                    }
                }
                if c == '\'' {
                    Tok::Str(s)
                } else {
                    Tok::Quoted(s)
                }
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && cs
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let mut j = i + 1;
                while j < cs.len()
                    && (cs[j].is_ascii_digit()
                        || cs[j] == '.'
                        || ((cs[j] == 'e' || cs[j] == 'E')
                            && cs
                                .get(j + 1)
                                .is_some_and(|d| d.is_ascii_digit() || *d == '-' || *d == '+'))
                        || ((cs[j] == '-' || cs[j] == '+') && matches!(cs[j - 1], 'e' | 'E')))
                {
                    j += 1;
                }
                let text: String = cs[i..j].iter().collect();
                i = j;
                Tok::Num(
                    text.parse()
                        .map_err(|_| syntax(start, format!("'{text}' is not a number")))?,
                )
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < cs.len() && (cs[j].is_alphanumeric() || matches!(cs[j], '_' | ':' | '.'))
                {
                    j += 1;
                }
                let text: String = cs[i..j].iter().collect();
                i = j;
                Tok::Ident(text)
            }
            other => {
                return Err(syntax(start, format!("unexpected character '{other}'")));
            }
        };
        toks.push((tok, start));
    }
    toks.push((Tok::End, cs.len() + 1));
    Ok(Lexer { toks })
}

/// Deepest nesting of parentheses, NOT and functions: recursion must not exhaust the
/// stack on a hostile filter.
const MAX_DEPTH: usize = 100;

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
}

/// Parses a cql2-text expression.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    let mut p = Parser {
        toks: tokenize(src)?.toks,
        at: 0,
        depth: 0,
    };
    let e = p.or()?;
    match p.peek() {
        Tok::End => Ok(e),
        t => Err(p.err(format!(
            "unexpected {} after a complete expression",
            describe(t)
        ))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Quoted(s) => format!("\"{s}\""),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Op(_) => "comparison operator".into(),
        Tok::End => "end of filter".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> usize {
        self.toks[self.at].1
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.at].0.clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn err(&self, msg: impl Into<String>) -> FilterError {
        syntax(self.pos(), msg)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let yes = self.keyword(kw);
        if yes {
            self.next();
        }
        yes
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), FilterError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.err(format!("expected {what}, found {}", describe(self.peek()))))
        }
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!(
                "the filter nests deeper than {MAX_DEPTH} levels; simplify it"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        self.deeper()?;
        let e = self.or_terms();
        self.depth -= 1;
        e
    }

    fn or_terms(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and()?];
        while self.eat_keyword("OR") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.not()?];
        while self.eat_keyword("AND") {
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.eat_keyword("NOT") {
            self.deeper()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if *self.peek() == Tok::LParen {
            self.next();
            let e = self.or()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(e);
        }
        if let Tok::Ident(name) = self.peek().clone() {
            if let Some(op) = SpatialOp::from_name(&name) {
                self.next();
                self.expect(Tok::LParen, &format!("'(' after {name}"))?;
                let a = self.spatial_operand()?;
                self.expect(Tok::Comma, "',' between the two geometries")?;
                let b = self.spatial_operand()?;
                self.expect(Tok::RParen, "')'")?;
                return Ok(Expr::Spatial(op, a, b));
            }
            let upper = name.to_ascii_uppercase();
            if (upper == "TRUE" || upper == "FALSE")
                && !matches!(self.toks[self.at + 1].0, Tok::Op(_))
                && !self.toks.get(self.at + 1).is_some_and(|(t, _)| {
                    matches!(t, Tok::Ident(k) if ["IS", "IN", "LIKE", "BETWEEN", "NOT"].contains(&k.to_ascii_uppercase().as_str()))
                })
            {
                self.next();
                return Ok(Expr::Const(upper == "TRUE"));
            }
        }
        let a = self.scalar()?;
        self.predicate(a)
    }

    fn predicate(&mut self, a: Scalar) -> Result<Expr, FilterError> {
        if let Tok::Op(op) = *self.peek() {
            self.next();
            let b = self.scalar()?;
            return Ok(Expr::Cmp(op, a, b));
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(self.err("expected NULL after IS"));
            }
            let e = Expr::IsNull(a);
            return Ok(if negated { Expr::Not(Box::new(e)) } else { e });
        }
        let negated = self.eat_keyword("NOT");
        let e = if self.eat_keyword("LIKE") {
            Expr::Like(a, self.scalar()?)
        } else if self.eat_keyword("BETWEEN") {
            let lo = self.scalar()?;
            if !self.eat_keyword("AND") {
                return Err(self.err("expected AND in BETWEEN … AND …"));
            }
            Expr::Between(a, lo, self.scalar()?)
        } else if self.eat_keyword("IN") {
            self.expect(Tok::LParen, "'(' after IN")?;
            let mut list = vec![self.scalar()?];
            while *self.peek() == Tok::Comma {
                self.next();
                list.push(self.scalar()?);
            }
            self.expect(Tok::RParen, "')' closing the IN list")?;
            Expr::In(a, list)
        } else {
            return Err(self.err(format!(
                "expected a comparison (=, <>, <, <=, >, >=, LIKE, BETWEEN, IN or IS NULL), found {}",
                describe(self.peek())
            )));
        };
        Ok(if negated { Expr::Not(Box::new(e)) } else { e })
    }

    fn string_arg(&mut self, func: &str) -> Result<String, FilterError> {
        self.expect(Tok::LParen, &format!("'(' after {func}"))?;
        let s = match self.next() {
            Tok::Str(s) => s,
            t => {
                return Err(self.err(format!(
                    "{func} takes a quoted string, found {}",
                    describe(&t)
                )));
            }
        };
        self.expect(Tok::RParen, "')'")?;
        Ok(s)
    }

    fn scalar(&mut self) -> Result<Scalar, FilterError> {
        let pos = self.pos();
        match self.next() {
            Tok::Str(s) => Ok(Scalar::Str(s)),
            Tok::Num(n) => Ok(Scalar::Num(n)),
            Tok::Quoted(s) => Ok(Scalar::Property(s)),
            Tok::Ident(name) => {
                let upper = name.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => return Ok(Scalar::Bool(true)),
                    "FALSE" => return Ok(Scalar::Bool(false)),
                    _ => {}
                }
                if *self.peek() != Tok::LParen {
                    return Ok(Scalar::Property(name));
                }
                match upper.as_str() {
                    "DATE" => {
                        let s = self.string_arg("DATE")?;
                        time::parse_date(&s)
                            .map(Scalar::Date)
                            .ok_or_else(|| syntax(pos, format!("'{s}' is not a date (YYYY-MM-DD)")))
                    }
                    "TIMESTAMP" => {
                        let s = self.string_arg("TIMESTAMP")?;
                        time::parse_timestamp(&s).map(Scalar::Timestamp).ok_or_else(|| {
                            syntax(
                                pos,
                                format!("'{s}' is not a timestamp (RFC 3339, e.g. 2024-05-01T12:00:00Z)"),
                            )
                        })
                    }
                    "CASEI" | "ACCENTI" => {
                        self.next();
                        self.deeper()?;
                        let inner = self.scalar();
                        self.depth -= 1;
                        let inner = inner?;
                        self.expect(Tok::RParen, "')'")?;
                        Ok(if upper == "CASEI" {
                            Scalar::Casei(Box::new(inner))
                        } else {
                            Scalar::Accenti(Box::new(inner))
                        })
                    }
                    _ if is_geometry_keyword(&upper) => self.geometry(&upper).map(Scalar::Geometry),
                    _ => Err(syntax(
                        pos,
                        format!(
                            "unknown function '{name}'; supported are CASEI, ACCENTI, DATE, TIMESTAMP and the S_ spatial functions"
                        ),
                    )),
                }
            }
            t => Err(syntax(
                pos,
                format!(
                    "expected a property, a literal or a function, found {}",
                    describe(&t)
                ),
            )),
        }
    }

    fn spatial_operand(&mut self) -> Result<Scalar, FilterError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Ident(name) if is_geometry_keyword(&name.to_ascii_uppercase()) => {
                self.next();
                self.geometry(&name.to_ascii_uppercase())
                    .map(Scalar::Geometry)
            }
            Tok::Ident(name) => {
                self.next();
                Ok(Scalar::Property(name))
            }
            Tok::Quoted(name) => {
                self.next();
                Ok(Scalar::Property(name))
            }
            t => Err(syntax(
                pos,
                format!(
                    "expected a geometry property or a geometry literal (POINT, POLYGON, BBOX, …), found {}",
                    describe(&t)
                ),
            )),
        }
    }

    // --- geometry literals (WKT and BBOX) ---

    fn geometry(&mut self, kind: &str) -> Result<Geometry<f64>, FilterError> {
        self.deeper()?;
        let g = self.geometry_body(kind);
        self.depth -= 1;
        g
    }

    fn geometry_body(&mut self, kind: &str) -> Result<Geometry<f64>, FilterError> {
        if kind == "BBOX" {
            self.expect(Tok::LParen, "'(' after BBOX")?;
            let mut v = vec![self.number()?];
            while *self.peek() == Tok::Comma {
                self.next();
                v.push(self.number()?);
            }
            self.expect(Tok::RParen, "')' closing BBOX")?;
            let (a, b) = match v.as_slice() {
                [x0, y0, x1, y1] => ((*x0, *y0), (*x1, *y1)),
                [x0, y0, _, x1, y1, _] => ((*x0, *y0), (*x1, *y1)),
                _ => return Err(self.err(format!("BBOX takes 4 or 6 numbers, got {}", v.len()))),
            };
            return Ok(Geometry::Polygon(geo::Rect::new(a, b).to_polygon()));
        }
        // An optional Z after the keyword: the third ordinate is read and dropped.
        if self.keyword("Z") {
            self.next();
        }
        Ok(match kind {
            "POINT" => {
                self.expect(Tok::LParen, "'(' after POINT")?;
                let c = self.coord()?;
                self.expect(Tok::RParen, "')'")?;
                Point(c).into()
            }
            "LINESTRING" => LineString(self.coords()?).into(),
            "POLYGON" => self.polygon()?.into(),
            "MULTIPOINT" => {
                self.expect(Tok::LParen, "'(' after MULTIPOINT")?;
                let mut pts = Vec::new();
                loop {
                    // Both MULTIPOINT((1 2),(3 4)) and MULTIPOINT(1 2, 3 4) occur.
                    let bracketed = *self.peek() == Tok::LParen;
                    if bracketed {
                        self.next();
                    }
                    pts.push(Point(self.coord()?));
                    if bracketed {
                        self.expect(Tok::RParen, "')'")?;
                    }
                    if *self.peek() != Tok::Comma {
                        break;
                    }
                    self.next();
                }
                self.expect(Tok::RParen, "')'")?;
                MultiPoint(pts).into()
            }
            "MULTILINESTRING" => MultiLineString(self.list(|p| p.coords().map(LineString))?).into(),
            "MULTIPOLYGON" => MultiPolygon(self.list(Parser::polygon)?).into(),
            "GEOMETRYCOLLECTION" => {
                let gs = self.list(|p| {
                    let pos = p.pos();
                    match p.next() {
                        Tok::Ident(k) if is_geometry_keyword(&k.to_ascii_uppercase()) => {
                            p.geometry(&k.to_ascii_uppercase())
                        }
                        t => Err(syntax(
                            pos,
                            format!("expected a geometry, found {}", describe(&t)),
                        )),
                    }
                })?;
                Geometry::GeometryCollection(geo::GeometryCollection(gs))
            }
            _ => return Err(self.err(format!("unknown geometry type {kind}"))),
        })
    }

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Parser) -> Result<T, FilterError>,
    ) -> Result<Vec<T>, FilterError> {
        self.expect(Tok::LParen, "'('")?;
        let mut out = vec![item(self)?];
        while *self.peek() == Tok::Comma {
            self.next();
            out.push(item(self)?);
        }
        self.expect(Tok::RParen, "')'")?;
        Ok(out)
    }

    fn polygon(&mut self) -> Result<Polygon<f64>, FilterError> {
        let pos = self.pos();
        let mut rings = self.list(|p| p.coords().map(LineString))?;
        for r in &rings {
            if r.0.len() < 4 || r.0.first() != r.0.last() {
                return Err(syntax(
                    pos,
                    "a polygon ring needs at least 4 positions and must end where it starts",
                ));
            }
        }
        let exterior = rings.remove(0);
        Ok(Polygon::new(exterior, rings))
    }

    fn coords(&mut self) -> Result<Vec<Coord<f64>>, FilterError> {
        self.list(Parser::coord)
    }

    fn coord(&mut self) -> Result<Coord<f64>, FilterError> {
        let x = self.number()?;
        let y = self.number()?;
        // A Z (or M) ordinate is allowed and ignored: predicates are two-dimensional.
        while matches!(self.peek(), Tok::Num(_)) {
            self.next();
        }
        Ok(Coord { x, y })
    }

    fn number(&mut self) -> Result<f64, FilterError> {
        let pos = self.pos();
        match self.next() {
            Tok::Num(n) if n.is_finite() => Ok(n),
            t => Err(syntax(
                pos,
                format!("expected a coordinate, found {}", describe(&t)),
            )),
        }
    }
}

fn is_geometry_keyword(upper: &str) -> bool {
    matches!(
        upper,
        "POINT"
            | "LINESTRING"
            | "POLYGON"
            | "MULTIPOINT"
            | "MULTILINESTRING"
            | "MULTIPOLYGON"
            | "GEOMETRYCOLLECTION"
            | "BBOX"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_predicates() {
        let e = parse("a = 1 OR b LIKE 'x%' AND NOT c IS NULL").unwrap();
        let Expr::Or(terms) = e else { panic!() };
        assert_eq!(terms.len(), 2);
        assert!(matches!(&terms[1], Expr::And(v) if v.len() == 2));
        assert!(parse("name = 'O''Brien'").is_ok());
        assert!(parse("x BETWEEN 1 AND 2 AND y NOT IN ('a','b')").is_ok());
        assert!(parse("S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1, 0 0)))").is_ok());
        assert!(parse("S_WITHIN(geom, BBOX(0,0,1,1))").is_ok());
        assert!(parse("d > DATE('2024-01-31') AND t < TIMESTAMP('2024-01-31T10:00:00Z')").is_ok());
    }

    #[test]
    fn errors_say_where() {
        let e = parse("a = 'x").unwrap_err();
        assert!(matches!(e, FilterError::Syntax { pos: 5, .. }), "{e:?}");
        assert!(parse("(a = 1").is_err());
        assert!(parse("a = 1 b").is_err());
        assert!(parse("a ==").is_err());
        assert!(parse("FOO(a) = 1").is_err());
        assert!(parse("S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1)))").is_err());
        let deep = format!("{}a = 1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).is_err());
        assert!(parse(&format!("{}a = 1", "NOT ".repeat(5000))).is_err());
        assert!(parse(&format!("{}a = 1{}", "(".repeat(50), ")".repeat(50))).is_ok());
    }
}
