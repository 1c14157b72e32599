//! Checks on generated candidates beyond the wording and fact rules of [`crate::validate`]:
//! language, topic, identity (brand, product name, letter form, hashtags) and grounding
//! (every sentence supported by the product). Each is a [`Check`]; a shop adds its own by
//! implementing the trait and passing it to [`crate::CopyWriter::with_checks`].
//!
//! They run on what the model wrote, not on the composer's text or a reviewer's edit: the
//! composer only restates the plan, and a reviewer may know facts the data does not hold.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use rust_stemmers::{Algorithm, Stemmer};

use crate::plan::Plan;
use crate::prompt::hashtag_allowance;
use crate::validate::{is_han, language_violation, Context, Rule, Violation};
use crate::verify;
use crate::writer::TextModel;

/// What a check sees: the candidate's context (product corpus, channel, locale, limit), the
/// plan it was written from, and the model that wrote it (checks may ask it questions).
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub ctx: &'a Context<'a>,
    pub plan: &'a Plan,
    pub model: Option<&'a dyn TextModel>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("ctx", self.ctx)
            .field("plan", self.plan)
            .field("model", &self.model.map(|m| m.id()))
            .finish()
    }
}

/// One check on a generated candidate. Violations carry the byte range they cover, so repair
/// can drop the sentences they fall in; whole-text rules ([`Rule::is_whole_text`]) use 0..0.
pub trait Check: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self, text: &str, input: &Input<'_>) -> Vec<Violation>;
}

/// The checks a candidate goes through after the rules, in order.
#[derive(Clone)]
pub struct Checks(Vec<Arc<dyn Check>>);

impl Checks {
    pub fn new(checks: Vec<Arc<dyn Check>>) -> Self {
        Self(checks)
    }

    /// Language, topic, identity and grounding.
    pub fn builtin() -> Self {
        Self(vec![
            Arc::new(Language),
            Arc::new(Topic),
            Arc::new(Identity),
            Arc::new(Grounding::default()),
        ])
    }

    pub fn run(&self, text: &str, input: &Input<'_>) -> Vec<Violation> {
        self.0.iter().flat_map(|c| c.check(text, input)).collect()
    }
}

impl Default for Checks {
    fn default() -> Self {
        Self::builtin()
    }
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| c.name()))
            .finish()
    }
}

fn whole(rule: Rule, message: String) -> Violation {
    Violation {
        rule,
        term: String::new(),
        message,
        start: 0,
        end: 0,
    }
}

/// Sentence ranges: after 。！？；, a line break, or . ! ? followed by a space or the end.
pub fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        let closes = match c {
            '。' | '！' | '？' | '；' | '\n' => true,
            '.' | '!' | '?' => chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if closes {
            out.push(start..end);
            start = end;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Generated text in the requested locale's script (a small model often answers a Chinese
/// prompt in English).
#[derive(Debug, Clone, Copy, Default)]
pub struct Language;

impl Check for Language {
    fn name(&self) -> &'static str {
        "language"
    }
    fn check(&self, text: &str, input: &Input<'_>) -> Vec<Violation> {
        language_violation(text, input.ctx.locale)
            .into_iter()
            .collect()
    }
}

/// About the product, not the model talking as an assistant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Topic;

/// Words too common to show what a text is about.
const STOPWORDS: &[&str] = &[
    "with", "that", "this", "your", "from", "have", "will", "more", "than", "they", "them", "what",
    "when", "which", "into", "also", "just", "only", "very", "every", "their", "there", "these",
    "those", "about", "would", "could", "should", "make", "made", "like", "best", "most", "much",
    "many", "some", "each", "other", "over", "such", "been", "were", "here", "product", "products",
    "item", "items", "perfect", "great", "quality", "design", "designed",
];

/// Significant words of a phrase: Latin words of 4+ letters that are not stopwords, Han pairs.
fn keywords(s: &str) -> Vec<String> {
    let lower = s.to_lowercase();
    let mut out: Vec<String> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| {
            w.chars().count() >= 4
                && w.chars().all(|c| c.is_ascii_alphanumeric())
                && !STOPWORDS.contains(w)
        })
        .map(str::to_owned)
        .collect();
    let han: Vec<char> = lower.chars().filter(|c| is_han(*c)).collect();
    out.extend(han.windows(2).map(|w| w.iter().collect::<String>()));
    out
}

#[allow(clippy::expect_used)] // a constant pattern, exercised by the tests
static CHATTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(i'?m (so |really )?(excited|thrilled|happy|glad|delighted|ready|here)|i am (so )?(excited|thrilled|happy|glad|here)|let me know|i can help|i'?d be (happy|glad)|i'?d love to (help|assist)|assist you|happy to help|as an ai|here'?s (a|an|the|your|how|some|what)|your product|our team|sure!|certainly!)|当然可以|作为一个|我很高兴|以下是",
    )
    .expect("chatter pattern")
});

impl Check for Topic {
    fn name(&self) -> &'static str {
        "topic"
    }
    fn check(&self, text: &str, input: &Input<'_>) -> Vec<Violation> {
        let plan = input.plan;
        let off = || {
            vec![whole(
                Rule::OffTopic,
                "not about the product, or talks as an assistant".into(),
            )]
        };
        if CHATTER.is_match(text) {
            return off();
        }
        let lower = text.to_lowercase();
        if keywords(&plan.title)
            .iter()
            .any(|k| lower.contains(k.as_str()))
        {
            return Vec::new();
        }
        let mut facts: Vec<String> = plan
            .facts
            .iter()
            .flat_map(|f| keywords(&f.value))
            .filter(|k| k.chars().count() >= 5 || !k.is_ascii())
            .filter(|k| lower.contains(k.as_str()))
            .collect();
        facts.sort();
        facts.dedup();
        if facts.len() >= 2 {
            Vec::new()
        } else {
            off()
        }
    }
}

/// The brand as given, the product by its name, no letter form, hashtags within the
/// channel's allowance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

#[allow(clippy::expect_used)] // constant patterns, exercised by the tests
static GENERIC_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:product|item|model|brand)\s+(?:[A-Z]|\d{1,2})\b|\b(?:product|brand) name\b|(?:产品|商品|品牌)\s*[A-ZＡ-Ｚ]")
        .expect("generic name pattern")
});
#[allow(clippy::expect_used)]
static SALUTATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\W*(?:dear\b|hi\b|hello\b|hey\b|greetings\b|good (?:morning|afternoon|evening)\b)|\bdear (?:customer|friend|shopper|valued)|^\W*(?:亲爱的|尊敬的|您好|你好|大家好|嗨)")
        .expect("salutation pattern")
});
#[allow(clippy::expect_used)]
static LETTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:thank you for (?:considering|choosing|your|shopping|reading)|thanks for (?:choosing|shopping|reading)|we are (?:pleased|delighted|excited|thrilled|happy) to|we'?re (?:pleased|delighted|excited|thrilled|happy) to|i am writing|we hope you|best regards|kind regards|warm regards|warmest regards|yours (?:sincerely|truly|faithfully)|sincerely,|regards,|cheers,|the [\w ]{1,30} team\s*$)|感谢您的|感谢您选择|此致|敬礼|祝好|祝您购物愉快")
        .expect("letter pattern")
});
#[allow(clippy::expect_used)]
static HASHTAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"#[^\s#]{1,40}#|#[\p{L}\p{N}_]+").expect("hashtag pattern"));

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Latin words with their byte ranges (letters, digits, inner hyphens and apostrophes).
fn latin_words(text: &str) -> Vec<(Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    let word = |c: char| c.is_alphanumeric() && !is_han(c);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let inner = (c == '-' || c == '\'' || c == '’')
            && start.is_some()
            && chars.get(k + 1).is_some_and(|(_, n)| word(*n));
        if word(c) || inner {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s..i, &text[s..i]));
        }
    }
    if let Some(s) = start {
        out.push((s..text.len(), &text[s..]));
    }
    out
}

fn strip_possessive(w: &str) -> &str {
    w.strip_suffix("'s")
        .or_else(|| w.strip_suffix("’s"))
        .unwrap_or(w)
}

impl Identity {
    fn brand(&self, text: &str, brand: &str, data: &str) -> Vec<Violation> {
        let want: Vec<&str> = brand.split_whitespace().collect();
        let want_lower = brand.to_lowercase();
        if want.is_empty() || brand.chars().any(is_han) {
            return Vec::new();
        }
        let words = latin_words(text);
        let mut out = Vec::new();
        for w in words.windows(want.len()) {
            let range = w[0].0.start..w[w.len() - 1].0.end;
            let written = strip_possessive(&text[range.clone()]);
            let lower = written.to_lowercase();
            if lower == want_lower {
                continue;
            }
            // A real word that happens to be close ("keep" for "Keel") is not a misspelling.
            let real_word = GENERIC.contains(lower.as_str())
                || GENERIC_STEMS.contains(&stem(&lower))
                || data
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|d| d == lower);
            if w.len() == 1 && real_word {
                continue;
            }
            let d = levenshtein(&lower, &want_lower);
            let len = want_lower.chars().count();
            // Close enough to be meant as the brand, not another word: one edit in four letters.
            if len >= 4 && d >= 1 && d <= (len / 4).max(1) {
                out.push(Violation {
                    rule: Rule::BrandName,
                    term: written.to_owned(),
                    message: format!("the brand is written {written:?}, not {brand:?}"),
                    start: range.start,
                    end: range.start + written.len(),
                });
            }
        }
        out
    }
}

impl Check for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }
    fn check(&self, text: &str, input: &Input<'_>) -> Vec<Violation> {
        let plan = input.plan;
        let mut out = Vec::new();
        if let Some(b) = &plan.brand {
            out.extend(self.brand(text, b, input.ctx.corpus.text()));
        }
        let hit = |re: &Regex, rule: Rule, what: &str, out: &mut Vec<Violation>| {
            for m in re.find_iter(text) {
                let term = m.as_str().trim().to_owned();
                out.push(Violation {
                    rule,
                    message: format!("{what} {term:?}"),
                    term,
                    start: m.start(),
                    end: m.end(),
                });
            }
        };
        hit(
            &GENERIC_NAME,
            Rule::ProductName,
            "the product named generically:",
            &mut out,
        );
        hit(&SALUTATION, Rule::LetterForm, "a salutation:", &mut out);
        hit(&LETTER, Rule::LetterForm, "a letter's phrasing:", &mut out);
        let allowance = hashtag_allowance(plan.channel);
        for m in HASHTAG.find_iter(text).skip(allowance) {
            out.push(Violation {
                rule: Rule::Hashtags,
                term: m.as_str().to_owned(),
                message: format!(
                    "{} takes at most {allowance} hashtags: {:?}",
                    plan.channel,
                    m.as_str()
                ),
                start: m.start(),
                end: m.end(),
            });
        }
        if !names_product(text, plan) {
            out.push(whole(
                Rule::ProductName,
                format!("does not name the product ({:?})", plan.title),
            ));
        }
        out
    }
}

/// The text names the product: a word of its title (stemmed: "dresses" names "Dress"), a
/// two-character stretch of a Chinese title, or the brand when the title is all stop words.
fn names_product(text: &str, plan: &Plan) -> bool {
    let stems = |s: &str, generic: bool| -> HashSet<String> {
        latin_words(s)
            .into_iter()
            .map(|(_, w)| w.to_lowercase())
            .filter(|w| w.chars().count() >= 3 && (generic || !GENERIC.contains(w.as_str())))
            .map(|w| stem(&w))
            .collect()
    };
    // A title word that is a generic word ("New") does not name the product.
    let title = stems(&plan.title, false);
    let han: Vec<char> = plan.title.chars().filter(|c| is_han(*c)).collect();
    if title.is_empty() && han.len() < 2 {
        return plan
            .brand
            .as_ref()
            .is_none_or(|b| text.to_lowercase().contains(&b.to_lowercase()));
    }
    let written = stems(text, true);
    if title.iter().any(|t| written.contains(t)) {
        return true;
    }
    han.windows(2)
        .any(|w| text.contains(&w.iter().collect::<String>()))
}

#[allow(clippy::expect_used)] // the algorithm is built in
static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

fn stem(word: &str) -> String {
    STEMMER
        .stem(&normalise(strip_possessive(word)))
        .into_owned()
}

/// Words any product's copy may use without a fact behind them: function words, the verbs
/// and calls to action of shop copy, and puffery that states nothing checkable ("stylish",
/// "everyday"). Nouns are kept out on purpose: a noun is a feature, a part or an audience.
const GENERIC_WORDS: &str = "
a an the and or but nor so yet for of in on at by to from with without into onto over under
about above below between through during before after up down out off again then than too very
just also only even still both each every either all any some no not more less few many much
such own same other another this that these those it its itself you your yours yourself we our
ours us they them their he she his her i me my is are was were be been being am do does did
have has had having will would can could shall should may might must let here there where when
while how what which who whom whose why if as because since until unless whether though
although like one ones thing things something anything everything nothing way ways day days
time times moment moments today tonight now new yours make makes made making keep keeps kept
bring brings brought add adds added give gives take takes get gets go goes come comes look
looks feel feels find see need needs want wants use uses used using enjoy enjoys discover meet
shop order buy try love loves choose pick grab treat put hold say know think mean ready
perfect ideal beautiful beautifully stylish elegant classic timeless modern simple simply
everyday daily essential lovely great good nice special wonderful fresh bold clean smart easy
easily effortless effortlessly versatile practical true real right little well
piece look style choice addition option available online store price priced now yours
introducing presenting say hello hello welcome upgrade elevate experience style
it's you'll you're we're that's there's here's don't won't can't isn't
every also ever never always whenever wherever whatever whether again once twice
cost costs costing priced offer offers offering feature features featuring include includes
including included comes product products item items purchase type types kind option
options various variety plenty anyone everyone someone those looking sure
stylish chic sleek cosy cozy comfy comfortable comfort charming cute fun lovely gorgeous
stunning striking handsome pretty tasteful refined polished cool iconic
functional practical handy useful accessory solution addition companion pick
home room space everyday life lifestyle routine wherever
pair paired pairs style styled wear worn wearing layer
gives give giving keep keeping bring bringing go-to must-have favourite
gentle touch against long condition flattering measure measures impress meal meals tool
workspace spot stable work separately ambiance decor glow equipped technology better
listening via convenience convenient ease combine combines refill replacement occasion
occasions gift morning evening night nights journey adventure embrace blend aroma flame
provide provides providing extra secure device carry access fit fits compromise
compromising functionality ensure ensures ensuring setting beverage beverages drink drinks
activity activities unique lasting within around across along beyond inside outside
throughout low conditions enhance enhances outfit design designed gram grams millimetre
millimetres centimetre centimetres litre litres hour hours minute minutes weigh weighs
visible visibility power powers embark transport nature
";

/// US spellings read as British ones, and a few product-type synonyms, on both sides of the
/// comparison ("organizer" is "organiser"; "sweater" is "jumper").
fn normalise(word: &str) -> String {
    let w = word.to_lowercase();
    const SPELLINGS: &[(&str, &str)] = &[
        ("color", "colour"),
        ("flavor", "flavour"),
        ("favorite", "favourite"),
        ("gray", "grey"),
        ("center", "centre"),
        ("meter", "metre"),
        ("liter", "litre"),
        ("aluminum", "aluminium"),
        ("jewelry", "jewellery"),
    ];
    const SYNONYMS: &[(&str, &str)] = &[
        ("sweater", "jumper"),
        ("pullover", "jumper"),
        ("pants", "trousers"),
        ("sneaker", "trainer"),
        ("cellphone", "phone"),
        ("smartphone", "phone"),
        ("flask", "bottle"),
        ("tote", "bag"),
    ];
    let mut w = SPELLINGS
        .iter()
        .chain(SYNONYMS)
        .find(|(us, _)| w.contains(us))
        .map(|(us, uk)| w.replacen(us, uk, 1))
        .unwrap_or(w);
    // -ize/-ization/-izer → -ise/-isation/-iser.
    if let Some(i) = w.find("iz") {
        if w[i + 2..].starts_with(['e', 'a', 'i']) {
            w.replace_range(i..i + 2, "is");
        }
    }
    w
}

/// A word that is part of a compound in the data ("pot" of "teapot", "knit" of "knitwear"), or
/// two of the data's words run together ("tablelamp").
fn compound_of(word: &str, data: &[String]) -> bool {
    let n = word.len();
    if n < 3 {
        return false;
    }
    data.iter().any(|d| {
        d.len() > n && (d.starts_with(word) || d.ends_with(word))
            || (d.len() >= 3
                && d.len() < n
                && word.starts_with(d.as_str())
                && data.iter().any(|e| e.len() >= 3 && word[d.len()..] == **e))
    })
}

/// A hashtag or run-together name split where the case changes: "CrewJumper" → crew, jumper.
fn camel_parts(word: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    for k in 1..chars.len() {
        let (i, c) = chars[k];
        if c.is_uppercase() && chars[k - 1].1.is_lowercase() {
            parts.push(&word[start..i]);
            start = i;
        }
    }
    parts.push(&word[start..]);
    parts
}

static GENERIC: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| GENERIC_WORDS.split_whitespace().collect());
static GENERIC_STEMS: LazyLock<HashSet<String>> =
    LazyLock::new(|| GENERIC.iter().map(|w| stem(w)).collect());

/// Chinese words copy may use without a fact behind them, longest matched first.
const ZH_GENERIC: &[&str] = &[
    "这款",
    "这个",
    "一款",
    "一件",
    "一只",
    "一个",
    "我们",
    "你的",
    "您的",
    "为您",
    "为你",
    "带来",
    "让您",
    "让你",
    "现在",
    "立即",
    "马上",
    "选购",
    "购买",
    "下单",
    "现价",
    "只需",
    "仅需",
    "日常",
    "生活",
    "轻松",
    "简约",
    "时尚",
    "经典",
    "美好",
    "精致",
    "优雅",
    "百搭",
    "理想",
    "选择",
    "可以",
    "能够",
    "一起",
    "每一天",
    "每天",
    "无论",
    "还是",
    "都能",
    "不仅",
    "而且",
    "同时",
    "以及",
    "就是",
    "认识",
    "一下",
    "快来",
    "值得",
    "拥有",
    "体验",
    "感受",
    "享受",
    "适合",
    "陪伴",
    "出门",
    "随时",
    "随身",
    "非常",
    "更加",
    "刚刚好",
    "刚好",
    "好看",
    "好用",
    "实用",
    "新品",
    "上新",
    "推荐",
    "采用",
    "制成",
    "制作",
    "使用",
    "设计",
    // Tuned on the development labels (infra/eval/copy/labels/dev.jsonl): connectives,
    // shopping words and puffery that state nothing checkable.
    "方便",
    "舒适",
    "穿着",
    "品牌",
    "价格",
    "产品",
    "商品",
    "时间",
    "功能",
    "满足",
    "需求",
    "所需",
    "需要",
    "提供",
    "效果",
    "确保",
    "开启",
    "关闭",
    "打开",
    "快捷",
    "便于",
    "清洗",
    "清洁",
    "保持",
    "享用",
    "享受",
    "搭配",
    "存放",
    "物品",
    "携带",
    "出行",
    "旅行",
    "工作",
    "办公室",
    "办公",
    "家庭",
    "家里",
    "场合",
    "各种",
    "美观",
    "精美",
    "细腻",
    "优质",
    "完美",
    "伴侣",
    "帮手",
    "必备",
    "睡眠",
    "睡觉",
    "放松",
    "舒缓",
    "用户",
    "即可",
    "无需",
    "颜值",
    "情况",
    "十足",
    "选用",
    "得到",
    "长达",
    "高达",
    "性能",
    "出色",
    "应对",
    "杯子",
    "衣服",
    "手工",
    "绘制",
    "展开",
    "操作",
    "饮用",
    "饮食",
    "搞定",
    "一杯",
    "一天",
    "每一餐",
    "感受",
    "质感",
    "风格",
    "心情",
    "温馨",
    "惊喜",
    "充满",
    "贴心",
    "安心",
    "放心",
    "好物",
    "必入",
    "入手",
    "种草",
    "宝贝",
    "朋友",
    "家人",
    "小伙伴",
    "生活中",
    "过程",
    "护理",
    "成员",
    "取放",
];
const ZH_GENERIC_CHARS: &str =
    "的了和与及为是在让您你我们都也更很每就能可以不再还又而且并或等各种其它他她给从到上下中里外前后时有来去出用做看想要会将把被对向于由这那吧呢吗啊哦呀之所个款件只份一它新好即便则得达需感性";

/// Every sentence supported by the product: each Latin word (stemmed) in the product's data
/// or the generic vocabulary, and every Han character inside a two-character stretch of the
/// data or a generic word. A sentence with an unsupported word is a finding naming the words.
///
/// Han text is checked only when the product's data holds Chinese: copy translated from
/// English data has no lexical support to find.
///
/// With `verify_above` set and a model that can judge ([`TextModel::judge`]), each flagged
/// sentence is put to the model ([`verify::support`]) and the finding is withdrawn when its
/// probability that the data supports the sentence reaches the threshold; a model error keeps
/// the finding. Off by default: measured on the development labels, Qwen2.5-Coder-1.5B says
/// "Yes" to invented sentences nearly as readily as to grounded ones (0.6–0.9 for both), so
/// every threshold lost more recall than it gained precision, at ~3 s a sentence
/// (`shopmind eval grounding --verify`, docs/copy.md). A stronger judge may do better.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grounding {
    pub verify_above: Option<f32>,
}

impl Grounding {
    /// Lexical findings, withdrawn when the model supports the sentence at `above` or more.
    pub fn verified(above: f32) -> Self {
        Self {
            verify_above: Some(above),
        }
    }
}

/// A sentence is a finding from this many unsupported Latin words or Han characters.
const MIN_UNSUPPORTED_WORDS: usize = 1;
const MIN_UNSUPPORTED_HAN: usize = 2;

impl Check for Grounding {
    fn name(&self) -> &'static str {
        "grounding"
    }
    fn check(&self, text: &str, input: &Input<'_>) -> Vec<Violation> {
        let found = unsupported_sentences(text, input);
        let (Some(above), Some(model)) = (self.verify_above, input.model) else {
            return found;
        };
        found
            .into_iter()
            .filter(
                |v| match verify::support(model, input.plan, &text[v.start..v.end]) {
                    Ok(p) => p < above,
                    Err(e) => {
                        tracing::debug!(error = %e, "verifier unavailable; the finding stands");
                        true
                    }
                },
            )
            .collect()
    }
}

/// The lexical pass of [`Grounding`]: a finding per sentence with unsupported words.
pub fn unsupported_sentences(text: &str, input: &Input<'_>) -> Vec<Violation> {
    let corpus = input.ctx.corpus.text();
    let supported: HashSet<String> = latin_words(corpus)
        .into_iter()
        .flat_map(|(_, w)| {
            let mut v = vec![stem(w)];
            v.extend(w.split(['-', '\'']).map(stem));
            v
        })
        .collect();
    let words: Vec<String> = latin_words(corpus)
        .into_iter()
        .map(|(_, w)| w.to_owned())
        .collect();
    let han_data: Vec<char> = corpus.chars().collect();
    let has_han = han_data.iter().any(|c| is_han(*c));
    let bigrams: HashSet<(char, char)> = han_data
        .windows(2)
        .filter(|w| is_han(w[0]) && is_han(w[1]))
        .map(|w| (w[0], w[1]))
        .collect();
    let mut out = Vec::new();
    for r in sentences(text) {
        let s = &text[r.clone()];
        let mut missing: Vec<String> = Vec::new();
        for (_, w) in latin_words(s) {
            if w.chars().any(|c| c.is_ascii_digit()) {
                continue; // numbers and codes are the fact rules' job
            }
            let lower = w.to_lowercase();
            if lower.chars().count() < 3 || GENERIC.contains(lower.as_str()) {
                continue;
            }
            let known = |p: &str| {
                let st = stem(p);
                supported.contains(&st) || GENERIC_STEMS.contains(&st)
            };
            let parts = camel_parts(w);
            if known(&lower)
                || lower
                    .split(['-', '\'', '’'])
                    .filter(|p| p.chars().count() >= 3)
                    .all(known)
                || (parts.len() > 1 && parts.iter().all(|p| known(p)))
                || compound_of(&lower, &words)
                || compound_of(&stem(&lower), &words)
            {
                continue;
            }
            if !missing.contains(&w.to_owned()) {
                missing.push(w.to_owned());
            }
        }
        let mut han_missing = 0;
        if has_han {
            let chars: Vec<char> = s.chars().collect();
            let mut covered = vec![false; chars.len()];
            for i in 0..chars.len().saturating_sub(1) {
                if bigrams.contains(&(chars[i], chars[i + 1])) {
                    covered[i] = true;
                    covered[i + 1] = true;
                }
            }
            for g in ZH_GENERIC {
                let g: Vec<char> = g.chars().collect();
                for i in 0..chars.len().saturating_sub(g.len() - 1) {
                    if chars[i..i + g.len()] == g[..] {
                        covered[i..i + g.len()].iter_mut().for_each(|c| *c = true);
                    }
                }
            }
            let mut run = String::new();
            for (i, c) in chars.iter().enumerate() {
                let bare = is_han(*c) && !covered[i] && !ZH_GENERIC_CHARS.contains(*c);
                if bare {
                    han_missing += 1;
                    run.push(*c);
                } else if !run.is_empty() {
                    missing.push(std::mem::take(&mut run));
                }
            }
            if !run.is_empty() {
                missing.push(run);
            }
        }
        let latin_missing = missing.iter().filter(|m| !m.chars().any(is_han)).count();
        if latin_missing >= MIN_UNSUPPORTED_WORDS || han_missing >= MIN_UNSUPPORTED_HAN {
            let trimmed = s.trim();
            let lead = s.len() - s.trim_start().len();
            out.push(Violation {
                rule: Rule::Ungrounded,
                term: missing.join(", "),
                message: format!("not in the product's data: {}", missing.join(", ")),
                start: r.start + lead,
                end: r.start + lead + trimmed.len(),
            });
        }
    }
    out
}

/// What catches invention in one sentence of copy, as the labelled-set evaluation
/// (`shopmind eval grounding`) scores it.
#[derive(Debug, Clone)]
pub struct Grounded {
    /// The lexical grounding pass's findings.
    pub lexical: Vec<Violation>,
    /// The fact rules' (numbers, materials, specs and unproven claims not in the data).
    pub facts: Vec<Violation>,
    /// With a model: its probability that the data supports the sentence.
    pub support: Option<Result<f32, String>>,
}

impl Grounded {
    /// Flagged as the pipeline would with the verifier at `verify_above` (None: lexical only).
    pub fn flagged(&self, verify_above: Option<f32>) -> bool {
        let lexical = !self.lexical.is_empty()
            && match (verify_above, &self.support) {
                (Some(above), Some(Ok(p))) => *p < above,
                _ => true,
            };
        lexical || !self.facts.is_empty()
    }
}

pub fn ground_sentence(
    req: &crate::CopyRequest,
    rules: &crate::Rules,
    sentence: &str,
    model: Option<&dyn TextModel>,
) -> Grounded {
    let corpus = crate::validate::Corpus::of(&req.product, rules);
    let ctx = Context {
        corpus: &corpus,
        channel: req.channel,
        locale: req.locale,
        max_chars: req.max_chars(),
        brand: req.product.brand.as_deref(),
    };
    let plan = crate::plan::plan(req, rules, &corpus);
    let lexical = unsupported_sentences(
        sentence,
        &Input {
            ctx: &ctx,
            plan: &plan,
            model: None,
        },
    );
    let facts = rules
        .check(sentence, &ctx)
        .violations
        .into_iter()
        .filter(|v| {
            matches!(
                v.rule,
                Rule::UnsupportedNumber
                    | Rule::UnsupportedMaterial
                    | Rule::UnsupportedSpec
                    | Rule::EcoClaim
                    | Rule::MedicalClaim
                    | Rule::Guarantee
            )
        })
        .collect();
    let support = model.map(|m| verify::support(m, &plan, sentence).map_err(|e| e.to_string()));
    Grounded {
        lexical,
        facts,
        support,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::product::CopyRequest;
    use crate::validate::{Corpus, Rules};
    use serde_json::json;

    /// Runs `check` on an input built for `product` on `channel` and `locale`.
    fn checked(
        product: serde_json::Value,
        channel: &str,
        locale: &str,
        model: Option<&dyn TextModel>,
        check: impl FnOnce(&Input<'_>) -> Vec<Violation>,
    ) -> Vec<Violation> {
        let r: CopyRequest = serde_json::from_value(json!({
            "product": product, "channel": channel, "locale": locale
        }))
        .unwrap();
        let rules = Rules::default();
        let corpus = Corpus::of(&r.product, &rules);
        let ctx = Context {
            corpus: &corpus,
            channel: r.channel,
            locale: r.locale,
            max_chars: r.max_chars(),
            brand: r.product.brand.as_deref(),
        };
        let p = plan(&r, &rules, &corpus);
        check(&Input {
            ctx: &ctx,
            plan: &p,
            model,
        })
    }

    fn run(product: serde_json::Value, channel: &str, locale: &str, text: &str) -> Vec<Rule> {
        checked(product, channel, locale, None, |i| {
            Checks::builtin().run(text, i)
        })
        .into_iter()
        .map(|v| v.rule)
        .collect()
    }

    fn jumper() -> serde_json::Value {
        json!({"id": "j", "title": "Merino crew jumper", "brand": "Fjell",
            "category": "Men > Knitwear", "price": 89, "currency": "EUR",
            "attributes": {"material": "merino wool", "colour": "navy"},
            "selling_points": ["Soft next to the skin", "Ribbed cuffs and hem"]})
    }

    #[test]
    fn grounded_copy_passes() {
        let text = "The Merino crew jumper by Fjell comes in navy merino wool. \
                    It feels soft next to the skin, with ribbed cuffs and a ribbed hem. \
                    An everyday classic.";
        assert_eq!(run(jumper(), "pdp_description", "en", text), vec![]);
    }

    #[test]
    fn invented_features_reviews_origins_and_audiences_are_findings() {
        for (sentence, word) in [
            ("It has a waterproof hood.", "waterproof"),
            ("Customers say it never pills.", "Customers"),
            ("Handcrafted in Scotland.", "Handcrafted"),
            ("A gift your dad will adore.", "gift"),
            ("Make sure to have a mermaid at your wedding.", "mermaid"),
        ] {
            let text =
                format!("The Merino crew jumper by Fjell is soft next to the skin. {sentence}");
            let rules = run(jumper(), "pdp_description", "en", &text);
            assert_eq!(rules, vec![Rule::Ungrounded], "{sentence} ({word})");
        }
    }

    #[test]
    fn misspelt_brands_generic_names_letters_and_hashtags() {
        let rules = run(
            jumper(),
            "social_post",
            "en",
            "Dear Customer, meet the Merino crew jumper by FJEL. Soft next to the skin. #Fjell #merino #navy",
        );
        assert!(rules.contains(&Rule::BrandName), "{rules:?}");
        assert!(rules.contains(&Rule::LetterForm), "{rules:?}");
        assert_eq!(rules.iter().filter(|r| **r == Rule::Hashtags).count(), 1);
        let rules = run(
            jumper(),
            "social_post",
            "en",
            "Yay! Product A is soft next to the skin, in navy merino wool.",
        );
        assert!(rules.contains(&Rule::ProductName), "{rules:?}");
        let rules = run(
            jumper(),
            "pdp_description",
            "en",
            "Soft next to the skin, in navy merino wool. Best regards, the Fjell team",
        );
        assert!(rules.contains(&Rule::LetterForm), "{rules:?}");
        // Not named at all.
        let rules = run(
            jumper(),
            "sms",
            "en",
            "Soft next to the skin, in navy, 89 EUR.",
        );
        assert!(rules.contains(&Rule::ProductName), "{rules:?}");
        // The brand's possessive is the brand.
        let rules = run(
            jumper(),
            "sms",
            "en",
            "Fjell's merino crew jumper, soft next to the skin.",
        );
        assert_eq!(rules, vec![]);
    }

    #[test]
    fn chinese_copy_is_grounded_in_chinese_data() {
        let product = json!({"id": "t", "title": "青花瓷茶杯", "brand": "景德",
            "category": "家居 > 茶具", "attributes": {"材质": "陶瓷", "容量": "200毫升"},
            "selling_points": ["手绘青花图案", "杯壁轻薄"]});
        let ok = "景德青花瓷茶杯采用陶瓷制成，手绘青花图案，杯壁轻薄，日常使用刚刚好。";
        assert_eq!(run(product.clone(), "pdp_description", "zh-CN", ok), vec![]);
        let invented = "景德青花瓷茶杯采用陶瓷制成。荣获国际设计大奖，深受顾客好评。";
        assert_eq!(
            run(product, "pdp_description", "zh-CN", invented),
            vec![Rule::Ungrounded]
        );
    }

    /// Answers every verifier question with a fixed probability of "Yes" (or fails). Its id
    /// names the answer: verdicts are cached by model id.
    struct Judge(Option<f32>, String);

    fn judge(p: Option<f32>) -> Judge {
        Judge(p, format!("judge-{p:?}"))
    }

    impl TextModel for Judge {
        fn id(&self) -> &str {
            &self.1
        }
        fn complete(
            &self,
            _: &[Vec<shopmind_inference::ChatMessage>],
            _: &shopmind_inference::GenerateOptions,
        ) -> crate::Result<Vec<shopmind_inference::Generation>> {
            Ok(Vec::new())
        }
        fn judge(
            &self,
            messages: &[shopmind_inference::ChatMessage],
            options: &[&str],
        ) -> crate::Result<Vec<f32>> {
            assert_eq!(options, ["Yes", "No"]);
            // The question shows the product data and the sentence.
            let user = &messages[1].content;
            assert!(user.contains("Title: Merino crew jumper") && user.contains("- colour: navy"));
            self.0
                .map(|p| vec![p, 1.0 - p])
                .ok_or_else(|| crate::CopyError::Model("down".into()))
        }
    }

    fn verified(judge: &Judge, text: &str) -> Vec<Violation> {
        checked(jumper(), "pdp_description", "en", Some(judge), |i| {
            Grounding::verified(0.5).check(text, i)
        })
    }

    #[test]
    fn the_verifier_withdraws_findings_it_supports_and_keeps_the_rest() {
        // A paraphrase the word lists do not know ("cosy" for soft merino).
        let text = "The Merino crew jumper by Fjell is soft. A cosy layer for cold mornings.";
        let found = verified(&judge(Some(0.9)), text);
        assert_eq!(found, vec![], "supported at 0.9 is withdrawn");
        let found = verified(&judge(Some(0.2)), text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            &text[found[0].start..found[0].end],
            "A cosy layer for cold mornings."
        );
        // No verdict: the lexical finding stands (fail closed).
        assert_eq!(verified(&judge(None), text).len(), 1);
        // Below the threshold by a hair still counts as unsupported.
        assert_eq!(verified(&judge(Some(0.49)), text).len(), 1);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("fjell", "fjel"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
    }
}
