//! Language codes as LibreTranslate's API speaks them, their English names, and language
//! identification over the languages the loaded models take (`whatlang`).

/// A code as a client sends it, as tolk's models name the language: lower case, LibreTranslate's
/// aliases undone (`zh-Hans` -> `zh`, `zh-Hant` -> `zt`, `pt-BR` -> `pb`).
pub(crate) fn from_client(code: &str) -> String {
    let code = code.trim().to_ascii_lowercase().replace('_', "-");
    match code.as_str() {
        "zh-hans" | "zh-cn" => "zh".into(),
        "zh-hant" | "zh-tw" => "zt".into(),
        "pt-br" => "pb".into(),
        _ => code,
    }
}

/// A model's code as LibreTranslate shows it to clients (`zh` -> `zh-Hans`).
pub(crate) fn to_client(code: &str) -> String {
    match code {
        "zh" => "zh-Hans".into(),
        "zt" => "zh-Hant".into(),
        "pb" => "pt-BR".into(),
        other => other.into(),
    }
}

/// The English name of a language code (the code itself for one not listed).
pub(crate) fn name(code: &str) -> String {
    let known = [
        ("ar", "Arabic"),
        ("cs", "Czech"),
        ("da", "Danish"),
        ("de", "German"),
        ("el", "Greek"),
        ("en", "English"),
        ("es", "Spanish"),
        ("fi", "Finnish"),
        ("fr", "French"),
        ("hu", "Hungarian"),
        ("it", "Italian"),
        ("ja", "Japanese"),
        ("ko", "Korean"),
        ("nl", "Dutch"),
        ("pb", "Portuguese (Brazil)"),
        ("pl", "Polish"),
        ("pt", "Portuguese"),
        ("ru", "Russian"),
        ("sv", "Swedish"),
        ("tr", "Turkish"),
        ("uk", "Ukrainian"),
        ("zh", "Chinese"),
        ("zt", "Chinese (traditional)"),
    ];
    known
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, n)| n.to_string())
}

/// whatlang's language for a model code, where it has one.
fn whatlang_of(code: &str) -> Option<whatlang::Lang> {
    use whatlang::Lang::*;
    Some(match code {
        "ar" => Ara,
        "cs" => Ces,
        "da" => Dan,
        "de" => Deu,
        "el" => Ell,
        "en" => Eng,
        "es" => Spa,
        "fi" => Fin,
        "fr" => Fra,
        "hu" => Hun,
        "it" => Ita,
        "ja" => Jpn,
        "ko" => Kor,
        "nl" => Nld,
        "pl" => Pol,
        "pt" | "pb" => Por,
        "ru" => Rus,
        "sv" => Swe,
        "tr" => Tur,
        "uk" => Ukr,
        "zh" | "zt" => Cmn,
        _ => return None,
    })
}

/// The languages of `text` among `codes`, best first, with confidences from 0 to 100 (as
/// LibreTranslate reports them). A text with nothing to tell by gives the first code at 0.
pub(crate) fn detect(text: &str, codes: &[String]) -> Vec<(String, f64)> {
    let allowed: Vec<(whatlang::Lang, &String)> = codes
        .iter()
        .filter_map(|c| whatlang_of(c).map(|l| (l, c)))
        .collect();
    let langs: Vec<whatlang::Lang> = allowed.iter().map(|(l, _)| *l).collect();
    let fallback = || vec![(codes.first().cloned().unwrap_or_else(|| "en".into()), 0.0)];
    if langs.is_empty() {
        return fallback();
    }
    let detector = whatlang::Detector::with_allowlist(langs);
    match detector.detect(text) {
        Some(info) => {
            let code = allowed
                .iter()
                .find(|(l, _)| *l == info.lang())
                .map(|(_, c)| (*c).clone())
                .unwrap_or_default();
            vec![(code, (info.confidence() * 100.0).round())]
        }
        None => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_languages_are_told_apart() {
        assert_eq!(from_client("zh-Hans"), "zh");
        assert_eq!(to_client("zh"), "zh-Hans");
        assert_eq!(from_client("NL"), "nl");
        assert_eq!(name("nl"), "Dutch");
        let codes = vec!["nl".to_string(), "en".to_string()];
        assert_eq!(
            detect(
                "Het kabinet heeft dinsdag nieuwe maatregelen aangekondigd tegen de woningnood.",
                &codes
            )[0]
            .0,
            "nl"
        );
        assert_eq!(
            detect(
                "The cabinet announced new measures against the housing shortage on Tuesday.",
                &codes
            )[0]
            .0,
            "en"
        );
        let zh = vec!["zh".to_string(), "en".to_string()];
        assert_eq!(detect("今天天气很好，我们去公园散步吧。", &zh)[0].0, "zh");
    }
}
