//! Text normalization shared by keywords and buyer messages (pure).
//!
//! Both sides of a match go through [`normalize_into`], so a keyword written
//! `Envío` matches `ENVIO`, `envio` and `ｅｎｖｉｏ`. The rules:
//! compatibility decomposition (NFKD: full-width → half-width, ligatures
//! split), combining marks dropped (accent-insensitive; `ё` = `е`), Unicode
//! lower case, `ß` → `ss`, anything that is not a letter or digit becomes one
//! space, and a space is put between Han/kana/hangul and other words so that
//! word boundaries can be checked by looking for a space.
//!
//! The same pass counts letters per script and notes letters that only some
//! languages use (ñ, ç, ß …); language detection reads those counts.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

use crate::lang::{Lang, LangVotes};

/// What the normalizer saw, for language detection and entity pre-checks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TextStats {
    pub latin_letters: u32,
    pub cyrillic_letters: u32,
    pub han_chars: u32,
    /// Japanese kana, Korean hangul, Arabic, Thai, Greek …: scripts kefu has
    /// no replies for.
    pub other_letters: u32,
    pub digits: u32,
    /// Question marks (? ？ ¿) and Chinese question particles (吗 呢).
    pub questions: u32,
    /// Latin words (runs of letters, digits allowed) and Cyrillic words.
    pub words: u32,
    /// Votes from letters particular to some languages (ñ → es, ß → de …).
    pub char_votes: LangVotes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Word,
    Ideograph,
}

/// Normalizes `input` into `out` (cleared first) and returns what it saw.
pub fn normalize_into(input: &str, out: &mut String) -> TextStats {
    out.clear();
    out.reserve(input.len());
    let mut state = State {
        out,
        last: Class::Space,
        pending_space: false,
        stats: TextStats::default(),
    };
    for c in input.chars() {
        if c.is_ascii() {
            state.push_ascii(c as u8);
        } else {
            note_language_letter(c, &mut state.stats.char_votes);
            if c == '¿' {
                state.stats.questions += 1;
            }
            if c == 'ß' || c == 'ẞ' {
                state.push_char('s');
                state.push_char('s');
                continue;
            }
            decompose_compatible(c, |d| {
                if is_combining_mark(d) {
                    return;
                }
                if d.is_ascii() {
                    state.push_ascii(d as u8);
                } else if d.is_alphanumeric() {
                    for lower in d.to_lowercase() {
                        state.push_char(lower);
                    }
                } else {
                    state.separator();
                }
            });
        }
    }
    state.stats
}

/// Convenience wrapper that allocates.
pub fn normalize(input: &str) -> String {
    let mut out = String::new();
    normalize_into(input, &mut out);
    out
}

struct State<'a> {
    out: &'a mut String,
    last: Class,
    pending_space: bool,
    stats: TextStats,
}

impl State<'_> {
    #[inline]
    fn push_ascii(&mut self, b: u8) {
        if b == b'?' {
            self.stats.questions += 1;
        }
        if b.is_ascii_alphanumeric() {
            if b.is_ascii_digit() {
                self.stats.digits += 1;
            } else {
                self.stats.latin_letters += 1;
            }
            self.start_token(Class::Word);
            self.out.push(b.to_ascii_lowercase() as char);
        } else {
            self.separator();
        }
    }

    fn push_char(&mut self, c: char) {
        if c.is_ascii() {
            self.push_ascii(c as u8);
            return;
        }
        let class = match script_of(c) {
            Script::Latin => {
                self.stats.latin_letters += 1;
                Class::Word
            }
            Script::Cyrillic => {
                self.stats.cyrillic_letters += 1;
                Class::Word
            }
            Script::Han => {
                self.stats.han_chars += 1;
                // Chinese asks with particles as often as with "?".
                if matches!(c, '吗' | '呢' | '嗎') {
                    self.stats.questions += 1;
                }
                Class::Ideograph
            }
            Script::OtherIdeographic => {
                self.stats.other_letters += 1;
                Class::Ideograph
            }
            Script::Other => {
                if c.is_numeric() {
                    self.stats.digits += 1;
                } else {
                    self.stats.other_letters += 1;
                }
                Class::Word
            }
        };
        self.start_token(class);
        self.out.push(c);
    }

    #[inline]
    fn start_token(&mut self, class: Class) {
        let boundary = self.pending_space || (self.last != Class::Space && self.last != class);
        if boundary && !self.out.is_empty() {
            self.out.push(' ');
        }
        if class == Class::Word && (self.last != Class::Word || self.pending_space) {
            self.stats.words += 1;
        }
        self.pending_space = false;
        self.last = class;
    }

    #[inline]
    fn separator(&mut self) {
        self.pending_space = true;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Cyrillic,
    Han,
    /// Kana and hangul: written without spaces like Han, but not Chinese.
    OtherIdeographic,
    Other,
}

pub fn script_of(c: char) -> Script {
    match c as u32 {
        0..=0x24F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF => Script::Latin,
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F => Script::Han,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => {
            Script::OtherIdeographic
        }
        _ => Script::Other,
    }
}

/// Whether a normalized keyword character needs a word boundary next to it:
/// Han and kana are written without spaces, so they never do.
pub fn needs_boundary(c: char) -> bool {
    !matches!(script_of(c), Script::Han | Script::OtherIdeographic)
}

fn note_language_letter(c: char, votes: &mut LangVotes) {
    let langs: &[Lang] = match c {
        'ñ' | 'Ñ' | '¿' | '¡' => &[Lang::Es],
        'ã' | 'õ' | 'Ã' | 'Õ' => &[Lang::Pt],
        'ç' | 'Ç' => &[Lang::Pt, Lang::Fr],
        'ß' | 'ẞ' | 'ä' | 'Ä' | 'ö' | 'Ö' | 'ü' | 'Ü' => &[Lang::De],
        'è' | 'È' | 'ù' | 'Ù' | 'î' | 'Î' | 'ï' | 'Ï' | 'œ' | 'Œ' | 'ë' | 'Ë' | 'û' | 'Û' => {
            &[Lang::Fr]
        }
        'à' | 'À' => &[Lang::Fr, Lang::Pt],
        'ê' | 'Ê' | 'ô' | 'Ô' | 'â' | 'Â' => &[Lang::Fr, Lang::Pt],
        'é' | 'É' => &[Lang::Fr, Lang::Es, Lang::Pt],
        'á' | 'Á' | 'í' | 'Í' | 'ó' | 'Ó' | 'ú' | 'Ú' => &[Lang::Es, Lang::Pt],
        _ => return,
    };
    for &lang in langs {
        votes.add(lang, 1.0 / langs.len() as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        input: &'static str,
        expect: &'static str,
    }

    #[test]
    fn normalization_table() {
        let cases = [
            Case {
                name: "ascii lowercased, punctuation folded",
                input: "Where IS my   order?!",
                expect: "where is my order",
            },
            Case {
                name: "accents dropped",
                input: "¿Cuánto tarda el envío?",
                expect: "cuanto tarda el envio",
            },
            Case {
                name: "full width",
                input: "ＲＲ１２３４５６７８９ＣＮ？",
                expect: "rr123456789cn",
            },
            Case {
                name: "german sharp s",
                input: "Größe STRAßE",
                expect: "grosse strasse",
            },
            Case {
                name: "cyrillic yo and case",
                input: "Доставка ЁЛКИ",
                expect: "доставка елки",
            },
            Case {
                name: "apostrophe splits",
                input: "l'adresse what's",
                expect: "l adresse what s",
            },
            Case {
                name: "han next to latin gets a space",
                input: "订单RR123456789CN到了吗",
                expect: "订单 rr123456789cn 到了吗",
            },
            Case {
                name: "chinese punctuation",
                input: "你好，包裹什么时候到？",
                expect: "你好 包裹什么时候到",
            },
            Case {
                name: "emoji is a separator",
                input: "thanks😊so much",
                expect: "thanks so much",
            },
            Case {
                name: "empty",
                input: "  ?! ",
                expect: "",
            },
        ];
        for case in cases {
            assert_eq!(normalize(case.input), case.expect, "{}", case.name);
        }
    }

    #[test]
    fn stats_count_scripts_and_words() {
        let mut out = String::new();
        let stats = normalize_into("Hola, ¿dónde está mi pedido 12345? 你好", &mut out);
        assert_eq!(stats.words, 6, "{out}");
        assert_eq!(stats.han_chars, 2);
        assert_eq!(stats.digits, 5);
        assert!(stats.char_votes.get(Lang::Es) > 1.0);
    }
}
