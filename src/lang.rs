//! Languages kefu answers in, and how it tells which one a buyer writes (pure).
//!
//! Detection is built for short chat messages, where statistical detectors
//! guess poorly: first the script (Han → Chinese, Cyrillic → Russian, kana,
//! hangul and other scripts → not supported, answered in English), then for
//! Latin text a vote between English, Spanish, Portuguese, French and German
//! from three kinds of evidence gathered during the single matching pass:
//! frequent function words ([`CUE_WORDS`]), the language of the intent
//! keywords that fired, and letters only some languages use (ñ, ç, ß …).
//! A channel's locale hint wins; a message with no evidence ("ok", "??")
//! keeps the conversation's last language or the store default.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::normalize::TextStats;

/// A language kefu has replies for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
    Es,
    Ru,
    Fr,
    Pt,
    De,
}

impl Lang {
    pub const ALL: [Lang; 7] = [
        Lang::En,
        Lang::Zh,
        Lang::Es,
        Lang::Ru,
        Lang::Fr,
        Lang::Pt,
        Lang::De,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
            Lang::Es => "es",
            Lang::Ru => "ru",
            Lang::Fr => "fr",
            Lang::Pt => "pt",
            Lang::De => "de",
        }
    }

    /// Parses a language code or a locale (`pt-BR`, `zh_CN`, `DE`).
    pub fn from_locale(locale: &str) -> Option<Lang> {
        let primary = locale
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Lang, String> {
        Lang::from_locale(s).ok_or_else(|| {
            format!(
                "unknown language `{s}`; kefu speaks {}",
                Lang::ALL.map(Lang::code).join(", ")
            )
        })
    }
}

/// Evidence for each supported language, plus one slot for Latin-script
/// languages kefu does not speak (Italian, Dutch, Turkish …), which are
/// answered in English rather than in a wrong neighbour language.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LangVotes([f32; 8]);

const OTHER_SLOT: usize = 7;

impl LangVotes {
    pub fn add(&mut self, lang: Lang, weight: f32) {
        self.0[lang.index()] += weight;
    }

    pub fn add_other(&mut self, weight: f32) {
        self.0[OTHER_SLOT] += weight;
    }

    pub fn add_all(&mut self, other: &LangVotes) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    pub fn get(&self, lang: Lang) -> f32 {
        self.0[lang.index()]
    }

    pub fn other(&self) -> f32 {
        self.0[OTHER_SLOT]
    }
}

/// How the reply language was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LangSource {
    /// The channel said which language the buyer uses.
    Hint,
    /// The script settles it (Han, Cyrillic).
    Script,
    /// Words and letters of the message voted.
    Words,
    /// No evidence: the conversation's last language or the store default.
    Fallback,
    /// A language kefu has no replies for: answered in English.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The language to answer in.
    pub lang: Lang,
    pub source: LangSource,
}

/// One Han character outweighs this many Latin letters.
const HAN_TO_LATIN: u32 = 20;

/// Chooses the reply language. `votes` holds cue-word and keyword votes
/// collected while matching; letter votes come from `stats`.
pub fn detect(
    stats: &TextStats,
    votes: &LangVotes,
    hint: Option<Lang>,
    fallback: Lang,
) -> Detected {
    let pick = |lang, source| Detected { lang, source };
    if let Some(lang) = hint {
        return pick(lang, LangSource::Hint);
    }
    let latin = stats.latin_letters;
    let cyrillic = stats.cyrillic_letters;
    let han = stats.han_chars;
    let other = stats.other_letters;
    if latin + cyrillic + han + other == 0 {
        return pick(fallback, LangSource::Fallback);
    }
    if other > 0 && other >= han && other * 2 >= latin + cyrillic {
        return pick(Lang::En, LangSource::Unsupported);
    }
    // Chinese buyers mix in English words ("refund 呢", "in stock 吗");
    // other buyers almost never type Han characters. So a few Han
    // characters make a message Chinese unless Latin text swamps them.
    if han > 0 && han * HAN_TO_LATIN >= latin + cyrillic {
        return pick(Lang::Zh, LangSource::Script);
    }
    if cyrillic > latin {
        return pick(Lang::Ru, LangSource::Script);
    }
    let mut all = *votes;
    all.add_all(&stats.char_votes);
    // Zh and Ru can still win here through romanized keywords ("3q", "spasibo").
    let candidates = [
        Lang::Es,
        Lang::Pt,
        Lang::Fr,
        Lang::De,
        Lang::Zh,
        Lang::Ru,
        Lang::En,
    ];
    let top = candidates
        .iter()
        .map(|&l| all.get(l))
        .fold(0.0f32, f32::max);
    let tied: Vec<Lang> = candidates
        .into_iter()
        .filter(|&l| all.get(l) == top)
        .collect();
    // Ties go to the conversation's language; otherwise away from English,
    // because buyers mix English words into their own language far more often
    // than English speakers mix in foreign ones.
    let best = (top > 0.0).then(|| {
        let lang = if tied.contains(&fallback) && fallback != Lang::En {
            fallback
        } else {
            tied[0]
        };
        (lang, top)
    });
    match best {
        Some((_, top)) if all.other() > top => pick(Lang::En, LangSource::Unsupported),
        Some((lang, top)) if top >= 1.0 || stats.words > 2 => pick(lang, LangSource::Words),
        Some(_) | None if stats.words > 3 => pick(Lang::En, LangSource::Words),
        _ => pick(fallback, LangSource::Fallback),
    }
}

/// Frequent short words that tell Latin-script languages apart. A word listed
/// under several languages votes for each of them with a share of one vote.
/// Written normalized (lower case, no accents).
pub const CUE_WORDS: &[(&str, &[Lang])] = &[
    // English
    ("the", &[Lang::En]),
    ("is", &[Lang::En]),
    ("are", &[Lang::En]),
    ("my", &[Lang::En]),
    ("i", &[Lang::En]),
    ("you", &[Lang::En]),
    ("it", &[Lang::En]),
    ("will", &[Lang::En, Lang::De]),
    ("when", &[Lang::En]),
    ("where", &[Lang::En]),
    ("how", &[Lang::En]),
    ("what", &[Lang::En]),
    ("can", &[Lang::En]),
    ("do", &[Lang::En, Lang::Pt]),
    ("does", &[Lang::En]),
    ("to", &[Lang::En]),
    ("and", &[Lang::En]),
    ("of", &[Lang::En]),
    ("for", &[Lang::En]),
    ("have", &[Lang::En]),
    ("has", &[Lang::En]),
    ("not", &[Lang::En]),
    ("please", &[Lang::En]),
    ("pls", &[Lang::En]),
    ("this", &[Lang::En]),
    ("that", &[Lang::En]),
    ("with", &[Lang::En]),
    ("your", &[Lang::En]),
    ("yet", &[Lang::En]),
    ("still", &[Lang::En]),
    ("why", &[Lang::En]),
    ("did", &[Lang::En]),
    ("be", &[Lang::En]),
    ("me", &[Lang::En, Lang::Es, Lang::Fr]),
    ("we", &[Lang::En]),
    ("there", &[Lang::En]),
    ("any", &[Lang::En]),
    ("just", &[Lang::En]),
    ("would", &[Lang::En]),
    ("should", &[Lang::En]),
    ("got", &[Lang::En]),
    ("get", &[Lang::En]),
    ("need", &[Lang::En]),
    ("want", &[Lang::En]),
    ("if", &[Lang::En]),
    ("or", &[Lang::En]),
    ("but", &[Lang::En]),
    ("order", &[Lang::En]),
    ("item", &[Lang::En]),
    ("package", &[Lang::En]),
    ("u", &[Lang::En]),
    ("im", &[Lang::En]),
    ("dont", &[Lang::En]),
    ("don", &[Lang::En]),
    ("t", &[Lang::En]),
    ("s", &[Lang::En]),
    ("long", &[Lang::En]),
    ("much", &[Lang::En]),
    ("yes", &[Lang::En]),
    ("an", &[Lang::En]),
    ("a", &[Lang::En, Lang::Pt]),
    ("was", &[Lang::En, Lang::De]),
    ("am", &[Lang::En]),
    ("been", &[Lang::En]),
    ("they", &[Lang::En]),
    ("from", &[Lang::En]),
    ("about", &[Lang::En]),
    ("asap", &[Lang::En]),
    ("could", &[Lang::En]),
    ("after", &[Lang::En]),
    ("again", &[Lang::En]),
    ("ever", &[Lang::En]),
    ("never", &[Lang::En]),
    ("only", &[Lang::En]),
    ("some", &[Lang::En]),
    ("all", &[Lang::En]),
    ("one", &[Lang::En]),
    ("ur", &[Lang::En]),
    ("its", &[Lang::En]),
    ("cant", &[Lang::En]),
    ("won", &[Lang::En]),
    ("haven", &[Lang::En]),
    ("hasn", &[Lang::En]),
    ("didn", &[Lang::En]),
    ("isn", &[Lang::En]),
    ("wasn", &[Lang::En]),
    ("sorry", &[Lang::En]),
    ("hey", &[Lang::En]),
    ("guys", &[Lang::En]),
    ("here", &[Lang::En]),
    ("now", &[Lang::En]),
    ("today", &[Lang::En]),
    ("yesterday", &[Lang::En]),
    ("week", &[Lang::En]),
    ("weeks", &[Lang::En]),
    ("days", &[Lang::En]),
    ("which", &[Lang::En]),
    ("who", &[Lang::En]),
    ("tell", &[Lang::En]),
    ("so", &[Lang::En]),
    ("in", &[Lang::En]),
    // Spanish
    ("el", &[Lang::Es]),
    ("los", &[Lang::Es]),
    ("las", &[Lang::Es]),
    ("mi", &[Lang::Es]),
    ("esta", &[Lang::Es, Lang::Pt]),
    ("que", &[Lang::Es, Lang::Pt, Lang::Fr]),
    ("por", &[Lang::Es, Lang::Pt]),
    ("para", &[Lang::Es, Lang::Pt]),
    ("cuando", &[Lang::Es]),
    ("donde", &[Lang::Es]),
    ("cuanto", &[Lang::Es]),
    ("como", &[Lang::Es, Lang::Pt]),
    ("hola", &[Lang::Es]),
    ("gracias", &[Lang::Es]),
    ("si", &[Lang::Es, Lang::Fr]),
    ("y", &[Lang::Es]),
    ("con", &[Lang::Es]),
    ("un", &[Lang::Es, Lang::Fr]),
    ("una", &[Lang::Es]),
    ("pedido", &[Lang::Es, Lang::Pt]),
    ("del", &[Lang::Es]),
    ("al", &[Lang::Es]),
    ("lo", &[Lang::Es]),
    ("le", &[Lang::Es, Lang::Fr]),
    ("tengo", &[Lang::Es]),
    ("puedo", &[Lang::Es]),
    ("hay", &[Lang::Es]),
    ("muy", &[Lang::Es]),
    ("pero", &[Lang::Es]),
    ("ya", &[Lang::Es]),
    ("todavia", &[Lang::Es]),
    ("aun", &[Lang::Es]),
    ("llega", &[Lang::Es]),
    ("quiero", &[Lang::Es]),
    ("buenas", &[Lang::Es]),
    ("buenos", &[Lang::Es]),
    ("dias", &[Lang::Es, Lang::Pt]),
    ("porque", &[Lang::Es, Lang::Pt]),
    ("usted", &[Lang::Es]),
    ("ustedes", &[Lang::Es]),
    ("mas", &[Lang::Es, Lang::Pt]),
    ("tambien", &[Lang::Es]),
    ("envio", &[Lang::Es, Lang::Pt]),
    ("nada", &[Lang::Es, Lang::Pt]),
    ("se", &[Lang::Es, Lang::Pt]),
    ("su", &[Lang::Es]),
    ("sus", &[Lang::Es]),
    ("favor", &[Lang::Es, Lang::Pt]),
    ("hasta", &[Lang::Es]),
    ("estoy", &[Lang::Es]),
    ("compra", &[Lang::Es, Lang::Pt]),
    ("paquete", &[Lang::Es]),
    ("estan", &[Lang::Es]),
    ("puede", &[Lang::Es]),
    ("pueden", &[Lang::Es]),
    ("necesito", &[Lang::Es]),
    ("quisiera", &[Lang::Es]),
    ("recibi", &[Lang::Es]),
    ("recibido", &[Lang::Es]),
    ("llegado", &[Lang::Es]),
    ("hoy", &[Lang::Es]),
    ("ayer", &[Lang::Es]),
    ("ahora", &[Lang::Es]),
    ("todo", &[Lang::Es]),
    ("saludos", &[Lang::Es]),
    ("mucho", &[Lang::Es]),
    ("tiene", &[Lang::Es]),
    ("tienen", &[Lang::Es]),
    ("hace", &[Lang::Es]),
    ("desde", &[Lang::Es]),
    ("sigue", &[Lang::Es]),
    ("nadie", &[Lang::Es]),
    ("cual", &[Lang::Es]),
    ("vale", &[Lang::Es]),
    ("llego", &[Lang::Es]),
    ("tarda", &[Lang::Es]),
    ("semanas", &[Lang::Es, Lang::Pt]),
    // Portuguese
    ("o", &[Lang::Pt]),
    ("os", &[Lang::Pt]),
    ("as", &[Lang::Pt]),
    ("meu", &[Lang::Pt]),
    ("minha", &[Lang::Pt]),
    ("e", &[Lang::Pt]),
    ("quando", &[Lang::Pt]),
    ("onde", &[Lang::Pt]),
    ("nao", &[Lang::Pt]),
    ("obrigado", &[Lang::Pt]),
    ("obrigada", &[Lang::Pt]),
    ("ola", &[Lang::Pt]),
    ("voce", &[Lang::Pt]),
    ("voces", &[Lang::Pt]),
    ("da", &[Lang::Pt]),
    ("em", &[Lang::Pt]),
    ("um", &[Lang::Pt]),
    ("uma", &[Lang::Pt]),
    ("com", &[Lang::Pt]),
    ("tem", &[Lang::Pt]),
    ("ainda", &[Lang::Pt]),
    ("chegou", &[Lang::Pt]),
    ("quanto", &[Lang::Pt]),
    ("posso", &[Lang::Pt]),
    ("oi", &[Lang::Pt]),
    ("vcs", &[Lang::Pt]),
    ("vc", &[Lang::Pt]),
    ("muito", &[Lang::Pt]),
    ("isso", &[Lang::Pt]),
    ("esse", &[Lang::Pt]),
    ("essa", &[Lang::Pt]),
    ("no", &[Lang::Pt, Lang::Es]),
    ("na", &[Lang::Pt]),
    ("pra", &[Lang::Pt]),
    ("ja", &[Lang::Pt]),
    ("sim", &[Lang::Pt]),
    ("bom", &[Lang::Pt]),
    ("boa", &[Lang::Pt]),
    ("tudo", &[Lang::Pt]),
    ("entrega", &[Lang::Pt, Lang::Es]),
    ("encomenda", &[Lang::Pt]),
    ("produto", &[Lang::Pt]),
    ("frete", &[Lang::Pt]),
    ("eu", &[Lang::Pt]),
    ("estou", &[Lang::Pt]),
    ("preciso", &[Lang::Pt]),
    ("gostaria", &[Lang::Pt]),
    ("recebi", &[Lang::Pt]),
    ("chegar", &[Lang::Pt]),
    ("hoje", &[Lang::Pt]),
    ("ontem", &[Lang::Pt]),
    ("agora", &[Lang::Pt]),
    ("ate", &[Lang::Pt]),
    ("sem", &[Lang::Pt]),
    ("tambem", &[Lang::Pt]),
    ("pode", &[Lang::Pt]),
    ("podem", &[Lang::Pt]),
    ("fazer", &[Lang::Pt]),
    ("vou", &[Lang::Pt]),
    ("queria", &[Lang::Pt]),
    ("quero", &[Lang::Pt]),
    ("pelo", &[Lang::Pt]),
    ("pela", &[Lang::Pt]),
    ("aqui", &[Lang::Pt]),
    ("ninguem", &[Lang::Pt]),
    ("qual", &[Lang::Pt]),
    ("ele", &[Lang::Pt]),
    ("ela", &[Lang::Pt]),
    ("dele", &[Lang::Pt]),
    ("estao", &[Lang::Pt]),
    ("entao", &[Lang::Pt]),
    ("chega", &[Lang::Pt]),
    ("demora", &[Lang::Pt]),
    ("bem", &[Lang::Pt]),
    // French
    ("la", &[Lang::Fr, Lang::Es]),
    ("les", &[Lang::Fr]),
    ("mon", &[Lang::Fr]),
    ("ma", &[Lang::Fr]),
    ("mes", &[Lang::Fr, Lang::Es]),
    ("est", &[Lang::Fr]),
    ("quand", &[Lang::Fr]),
    ("ou", &[Lang::Fr, Lang::Pt]),
    ("comment", &[Lang::Fr]),
    ("bonjour", &[Lang::Fr]),
    ("bonsoir", &[Lang::Fr]),
    ("merci", &[Lang::Fr]),
    ("je", &[Lang::Fr]),
    ("vous", &[Lang::Fr]),
    ("de", &[Lang::Fr, Lang::Es, Lang::Pt]),
    ("du", &[Lang::Fr, Lang::De]),
    ("des", &[Lang::Fr]),
    ("et", &[Lang::Fr]),
    ("une", &[Lang::Fr]),
    ("pour", &[Lang::Fr]),
    ("pas", &[Lang::Fr]),
    ("ne", &[Lang::Fr]),
    ("j", &[Lang::Fr]),
    ("l", &[Lang::Fr]),
    ("c", &[Lang::Fr]),
    ("d", &[Lang::Fr]),
    ("qu", &[Lang::Fr]),
    ("n", &[Lang::Fr]),
    ("toujours", &[Lang::Fr]),
    ("commande", &[Lang::Fr]),
    ("colis", &[Lang::Fr]),
    ("avec", &[Lang::Fr]),
    ("mais", &[Lang::Fr]),
    ("il", &[Lang::Fr]),
    ("elle", &[Lang::Fr]),
    ("nous", &[Lang::Fr]),
    ("votre", &[Lang::Fr]),
    ("vos", &[Lang::Fr]),
    ("ce", &[Lang::Fr]),
    ("cette", &[Lang::Fr]),
    ("suis", &[Lang::Fr]),
    ("ai", &[Lang::Fr]),
    ("au", &[Lang::Fr]),
    ("aux", &[Lang::Fr]),
    ("sur", &[Lang::Fr]),
    ("combien", &[Lang::Fr]),
    ("svp", &[Lang::Fr]),
    ("rien", &[Lang::Fr]),
    ("encore", &[Lang::Fr]),
    ("quoi", &[Lang::Fr]),
    ("salut", &[Lang::Fr]),
    ("oui", &[Lang::Fr]),
    ("tres", &[Lang::Fr]),
    ("livraison", &[Lang::Fr]),
    ("avez", &[Lang::Fr]),
    ("avoir", &[Lang::Fr]),
    ("fait", &[Lang::Fr]),
    ("faire", &[Lang::Fr]),
    ("peux", &[Lang::Fr]),
    ("pouvez", &[Lang::Fr]),
    ("veux", &[Lang::Fr]),
    ("voudrais", &[Lang::Fr]),
    ("aujourd", &[Lang::Fr]),
    ("hui", &[Lang::Fr]),
    ("depuis", &[Lang::Fr]),
    ("jours", &[Lang::Fr]),
    ("semaines", &[Lang::Fr]),
    ("recu", &[Lang::Fr]),
    ("madame", &[Lang::Fr]),
    ("monsieur", &[Lang::Fr]),
    ("cordialement", &[Lang::Fr]),
    ("bonne", &[Lang::Fr]),
    ("journee", &[Lang::Fr]),
    ("vraiment", &[Lang::Fr]),
    ("trop", &[Lang::Fr]),
    ("chez", &[Lang::Fr]),
    ("dans", &[Lang::Fr]),
    ("moi", &[Lang::Fr]),
    ("ca", &[Lang::Fr]),
    ("cela", &[Lang::Fr]),
    ("tout", &[Lang::Fr]),
    ("fois", &[Lang::Fr]),
    ("ici", &[Lang::Fr]),
    ("deja", &[Lang::Fr]),
    ("bien", &[Lang::Fr, Lang::Es]),
    // German
    ("der", &[Lang::De]),
    ("die", &[Lang::De]),
    ("das", &[Lang::De]),
    ("mein", &[Lang::De]),
    ("meine", &[Lang::De]),
    ("meinen", &[Lang::De]),
    ("ist", &[Lang::De]),
    ("wann", &[Lang::De]),
    ("wo", &[Lang::De]),
    ("wie", &[Lang::De]),
    ("hallo", &[Lang::De]),
    ("danke", &[Lang::De]),
    ("ich", &[Lang::De]),
    ("sie", &[Lang::De]),
    ("und", &[Lang::De]),
    ("nicht", &[Lang::De]),
    ("ein", &[Lang::De]),
    ("eine", &[Lang::De]),
    ("einen", &[Lang::De]),
    ("fur", &[Lang::De]),
    ("mit", &[Lang::De]),
    ("bitte", &[Lang::De]),
    ("noch", &[Lang::De]),
    ("kann", &[Lang::De]),
    ("habe", &[Lang::De]),
    ("bestellung", &[Lang::De]),
    ("paket", &[Lang::De]),
    ("ihr", &[Lang::De]),
    ("ihre", &[Lang::De]),
    ("ihnen", &[Lang::De]),
    ("auf", &[Lang::De]),
    ("zu", &[Lang::De]),
    ("es", &[Lang::De, Lang::Es]),
    ("den", &[Lang::De]),
    ("dem", &[Lang::De]),
    ("wird", &[Lang::De]),
    ("gibt", &[Lang::De]),
    ("schon", &[Lang::De]),
    ("auch", &[Lang::De]),
    ("aber", &[Lang::De]),
    ("guten", &[Lang::De]),
    ("tag", &[Lang::De]),
    ("wir", &[Lang::De]),
    ("hat", &[Lang::De]),
    ("sind", &[Lang::De]),
    ("oder", &[Lang::De]),
    ("lieferung", &[Lang::De]),
    ("warum", &[Lang::De]),
    ("viel", &[Lang::De]),
    ("kein", &[Lang::De]),
    ("keine", &[Lang::De]),
    ("bei", &[Lang::De]),
    ("von", &[Lang::De]),
    ("nach", &[Lang::De]),
    ("jetzt", &[Lang::De]),
    ("hast", &[Lang::De]),
    ("haben", &[Lang::De]),
    ("gestern", &[Lang::De]),
    ("zusammen", &[Lang::De]),
    ("passt", &[Lang::De]),
    ("mir", &[Lang::De]),
    ("mich", &[Lang::De]),
    ("dich", &[Lang::De]),
    ("uns", &[Lang::De]),
    ("euch", &[Lang::De]),
    ("sehr", &[Lang::De]),
    ("gut", &[Lang::De]),
    ("hier", &[Lang::De]),
    ("kannst", &[Lang::De]),
    ("konnen", &[Lang::De]),
    ("mochte", &[Lang::De]),
    ("wurde", &[Lang::De]),
    ("bekommen", &[Lang::De]),
    ("immer", &[Lang::De]),
    ("seit", &[Lang::De]),
    ("wieder", &[Lang::De]),
    ("wochen", &[Lang::De]),
    ("tagen", &[Lang::De]),
    ("heute", &[Lang::De]),
    ("morgen", &[Lang::De]),
    ("leider", &[Lang::De]),
    ("vielen", &[Lang::De]),
    ("dank", &[Lang::De]),
    ("grusse", &[Lang::De]),
    ("gruss", &[Lang::De]),
    ("geehrte", &[Lang::De]),
    ("damen", &[Lang::De]),
    ("herren", &[Lang::De]),
    ("bestellt", &[Lang::De]),
    ("erhalten", &[Lang::De]),
    ("ware", &[Lang::De]),
    ("artikel", &[Lang::De]),
    ("bin", &[Lang::De]),
];

/// Common words of Latin-script languages kefu does not answer in. They vote
/// for "other", so an Italian buyer gets English rather than Spanish.
pub const OTHER_CUE_WORDS: &[&str] = &[
    // Italian
    "ciao",
    "grazie",
    "il",
    "della",
    "sono",
    "ho",
    "perche",
    "buongiorno",
    "ordine",
    "spedizione",
    "pacco",
    "dov",
    "gli",
    "questo",
    "quanto",
    "arrivato",
    "non",
    // Dutch
    "het",
    "niet",
    "ik",
    "mijn",
    "bestelling",
    "wanneer",
    "bedankt",
    "hoi",
    "een",
    "wordt",
    "verzending",
    "waar",
    "pakket",
    "dank",
    // Turkish
    "merhaba",
    "siparis",
    "siparisim",
    "tesekkurler",
    "kargo",
    "nerede",
    "ne",
    "zaman",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(latin: u32, cyrillic: u32, han: u32, other: u32, words: u32) -> TextStats {
        TextStats {
            latin_letters: latin,
            cyrillic_letters: cyrillic,
            han_chars: han,
            other_letters: other,
            words,
            ..TextStats::default()
        }
    }

    fn votes(pairs: &[(Lang, f32)]) -> LangVotes {
        let mut v = LangVotes::default();
        for &(lang, w) in pairs {
            v.add(lang, w);
        }
        v
    }

    struct Case {
        name: &'static str,
        stats: TextStats,
        votes: LangVotes,
        hint: Option<Lang>,
        expect: Detected,
    }

    #[test]
    fn detection_table() {
        let d = |lang, source| Detected { lang, source };
        let cases = [
            Case {
                name: "hint wins over the text",
                stats: stats(20, 0, 0, 0, 4),
                votes: votes(&[(Lang::En, 3.0)]),
                hint: Some(Lang::Fr),
                expect: d(Lang::Fr, LangSource::Hint),
            },
            Case {
                name: "han characters",
                stats: stats(4, 0, 6, 0, 1),
                votes: LangVotes::default(),
                hint: None,
                expect: d(Lang::Zh, LangSource::Script),
            },
            Case {
                name: "cyrillic",
                stats: stats(0, 20, 0, 0, 3),
                votes: LangVotes::default(),
                hint: None,
                expect: d(Lang::Ru, LangSource::Script),
            },
            Case {
                name: "japanese kana is answered in english",
                stats: stats(0, 0, 2, 8, 0),
                votes: LangVotes::default(),
                hint: None,
                expect: d(Lang::En, LangSource::Unsupported),
            },
            Case {
                name: "spanish words",
                stats: stats(30, 0, 0, 0, 6),
                votes: votes(&[(Lang::Es, 3.0), (Lang::Pt, 1.0)]),
                hint: None,
                expect: d(Lang::Es, LangSource::Words),
            },
            Case {
                name: "no evidence in a short message keeps the conversation language",
                stats: stats(2, 0, 0, 0, 1),
                votes: LangVotes::default(),
                hint: None,
                expect: d(Lang::De, LangSource::Fallback),
            },
            Case {
                name: "punctuation only",
                stats: stats(0, 0, 0, 0, 0),
                votes: LangVotes::default(),
                hint: None,
                expect: d(Lang::De, LangSource::Fallback),
            },
            Case {
                name: "a tie with English goes to the other language",
                stats: stats(10, 0, 0, 0, 2),
                votes: votes(&[(Lang::En, 1.0), (Lang::Pt, 1.0)]),
                hint: None,
                expect: d(Lang::Pt, LangSource::Words),
            },
            Case {
                name: "a few han characters among english words",
                stats: stats(12, 0, 1, 0, 2),
                votes: votes(&[(Lang::En, 1.0)]),
                hint: None,
                expect: d(Lang::Zh, LangSource::Script),
            },
            Case {
                name: "a tie goes to the conversation language",
                stats: stats(10, 0, 0, 0, 2),
                votes: votes(&[(Lang::Fr, 1.0), (Lang::De, 1.0)]),
                hint: None,
                expect: d(Lang::De, LangSource::Words),
            },
        ];
        for case in cases {
            let got = detect(&case.stats, &case.votes, case.hint, Lang::De);
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn locales_parse() {
        assert_eq!(Lang::from_locale("pt-BR"), Some(Lang::Pt));
        assert_eq!(Lang::from_locale("zh_CN"), Some(Lang::Zh));
        assert_eq!(Lang::from_locale("DE"), Some(Lang::De));
        assert_eq!(Lang::from_locale("ja"), None);
        assert!("xx".parse::<Lang>().unwrap_err().contains("kefu speaks en"));
    }
}
