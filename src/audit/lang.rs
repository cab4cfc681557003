//! The report's words in English and Japanese. Only text lives here: the data (names,
//! codes, patterns, hashes) is the same in both. Templates mark numbers as `{name}`.

use std::str::FromStr;

use super::oracle::Expect;
use super::probes::Kind;
use crate::policy::{Reason, Route};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Lang::En),
            "ja" => Ok(Lang::Ja),
            _ => Err(format!("{s:?}: use en or ja")),
        }
    }
}

impl Lang {
    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Ja => &JA,
        }
    }
}

pub struct Text {
    /// `lang` attribute of the document.
    pub code: &'static str,
    /// Between two sentences of one paragraph.
    pub gap: &'static str,
    pub title: &'static str,
    pub subtitle: &'static str,
    /// `{decisions}`.
    pub verdict_ok: &'static str,
    /// `{failures}`, `{decisions}`.
    pub verdict_fail: &'static str,

    pub s1: &'static str,
    pub generated: &'static str,
    pub version: &'static str,
    pub config_source: &'static str,
    pub combined: &'static str,
    pub hash_explain: &'static str,
    pub file: &'static str,
    pub bytes: &'static str,

    pub s2: &'static str,
    pub s2_intro: &'static str,
    pub s2_no_parent: &'static str,
    pub s2_parent: &'static str,
    pub segments: &'static str,
    pub segment: &'static str,
    pub client_networks: &'static str,
    /// Segments table: the tenant-restriction column and its value when off.
    pub tenant_col: &'static str,
    pub tenant_off: &'static str,
    pub profiles: &'static str,
    pub profile: &'static str,
    pub case: &'static str,
    pub used_by: &'static str,
    pub direct_col: &'static str,
    pub denied_col: &'static str,
    pub rest_col: &'static str,
    pub rest_upstream: &'static str,
    pub rest_503: &'static str,
    pub cases: [&'static str; 3],
    pub custom: &'static str,
    pub none: &'static str,

    pub s3: &'static str,
    pub s3_intro: &'static str,
    pub s3_none: &'static str,
    pub name: &'static str,
    pub address: &'static str,
    pub auth: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub health: &'static str,
    pub interval: &'static str,
    pub timeout: &'static str,
    pub fall: &'static str,
    pub rise: &'static str,
    /// `{n}`.
    pub fall_n: &'static str,
    /// `{n}`.
    pub rise_n: &'static str,

    pub s4: &'static str,
    pub s4_intro: &'static str,
    pub s4_patterns: &'static str,
    pub s4_none: &'static str,
    pub s4_others: &'static str,
    pub direct_in: &'static str,
    pub description: &'static str,
    pub source: &'static str,
    pub list_version: &'static str,
    pub retrieved: &'static str,
    pub endpoint_ids: &'static str,
    pub references: &'static str,
    pub notes: &'static str,
    pub rule: &'static str,
    pub endpoint_or_source: &'static str,
    pub endpoint: &'static str,
    pub tcp_ports: &'static str,
    pub udp_ports: &'static str,
    pub udp_note: &'static str,
    pub domains: &'static str,
    pub networks: &'static str,

    pub s5: &'static str,
    pub s5_intro: &'static str,
    /// `{probes}`, `{profiles}`, `{decisions}`, `{clients}`, `{per_pattern}`, `{per_category}`.
    pub s5_counts: &'static str,
    pub s5_no_parent: &'static str,
    pub s5_capped: &'static str,
    pub probes_col: &'static str,
    pub expect_direct_col: &'static str,
    pub expect_not_col: &'static str,
    pub failures_col: &'static str,
    pub kinds: &'static str,
    pub legend: &'static str,
    pub unknown_clients: &'static str,
    pub unknown_intro: &'static str,
    pub no_unknown: &'static str,
    pub client: &'static str,
    pub target: &'static str,
    pub probe_list: &'static str,
    pub probe: &'static str,
    pub kind_from: &'static str,
    pub expected: &'static str,
    pub got: &'static str,
    pub result: &'static str,
    pub normalised: &'static str,
    pub invalid: &'static str,
    pub end: &'static str,

    /// Weakened safeguards: heading, what the section is, when there is none, columns.
    pub s6: &'static str,
    pub s6_intro: &'static str,
    pub s6_none: &'static str,
    pub setting: &'static str,
    pub value: &'static str,
    pub opens: &'static str,

    expect_words: [&'static str; 3],
    route_words: [&'static str; 3],
    reason_words: [&'static str; 6],
    kind_words: [&'static str; 7],
}

impl Text {
    pub fn expect(&self, e: Expect) -> &'static str {
        self.expect_words[match e {
            Expect::Direct => 0,
            Expect::NotDirect => 1,
            Expect::Deny => 2,
        }]
    }

    /// What a route means, for the legend (the route itself is shown as its code).
    pub fn route(&self, r: Route) -> &'static str {
        self.route_words[match r {
            Route::Direct => 0,
            Route::Upstream => 1,
            Route::Deny => 2,
        }]
    }

    pub fn reason(&self, r: Reason) -> &'static str {
        self.reason_words[match r {
            Reason::Allowlisted => 0,
            Reason::NotAllowlisted => 1,
            Reason::PortNotAllowlisted => 2,
            Reason::DenyRule => 3,
            Reason::UnknownClient => 4,
            Reason::InvalidTarget => 5,
        }]
    }

    pub fn kind(&self, k: Kind) -> &'static str {
        self.kind_words[match k {
            Kind::Lookalike => 0,
            Kind::IdnLookalike => 1,
            Kind::RealSpelling => 2,
            Kind::OutsideNetwork => 3,
            Kind::InsideNetwork => 4,
            Kind::SharedHosting => 5,
            Kind::DeniedName => 6,
        }]
    }

    pub fn case_label(&self, case: Option<u8>) -> &'static str {
        match case {
            Some(n @ 1..=3) => self.cases[usize::from(n - 1)],
            _ => self.custom,
        }
    }
}

/// Every route, reason and kind, for legends.
pub const ROUTES: [Route; 3] = [Route::Direct, Route::Upstream, Route::Deny];
pub const REASONS: [Reason; 6] = [
    Reason::Allowlisted,
    Reason::NotAllowlisted,
    Reason::PortNotAllowlisted,
    Reason::DenyRule,
    Reason::UnknownClient,
    Reason::InvalidTarget,
];
pub const KINDS: [Kind; 7] = [
    Kind::Lookalike,
    Kind::IdnLookalike,
    Kind::OutsideNetwork,
    Kind::SharedHosting,
    Kind::RealSpelling,
    Kind::InsideNetwork,
    Kind::DeniedName,
];

/// Replaces `{key}` by its value.
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

static EN: Text = Text {
    code: "en",
    gap: " ",
    title: "Local breakout audit report",
    subtitle: "α′ model: configuration, sources and fail-closed evidence of lbo-proxy",
    verdict_ok: "All {decisions} decisions agree with the expectation: no lookalike name, address outside an allowlisted network or shared-hosting name breaks out.",
    verdict_fail: "FAILURE: {failures} of {decisions} decisions contradict the expectation. Do not put this configuration into service.",

    s1: "Identification",
    generated: "Generated (UTC)",
    version: "lbo-proxy version",
    config_source: "Configuration source",
    combined: "SHA-256 of configuration and allowlists",
    hash_explain: "Each file is hashed over its exact bytes; for the embedded default and the built-in allowlists, the text compiled into the binary (the same bytes as the file named in the command below, in the source of this version). The combined value is the SHA-256 of the per-file hashes, each as one line of lower-case hex, in the order listed. Recompute it with:",
    file: "File",
    bytes: "Bytes",

    s2: "Summary",
    s2_intro: "The client's source address selects a segment (the most specific network wins), the segment a profile. The categories a profile breaks out go direct (local breakout) when name or address and port match a rule; its denied categories are refused (403); a client in no segment is refused (403).",
    s2_no_parent: "Everything else would go to the security cloud, but no parent is configured: it is refused with 503, never sent direct.",
    s2_parent: "Everything else goes to the security cloud (upstream).",
    segments: "Segments",
    segment: "Segment",
    client_networks: "Client networks",
    tenant_col: "Tenant restrictions (sign-in intercepted, headers set)",
    tenant_off: "off (sign-in is a blind tunnel)",
    profiles: "Profiles",
    profile: "Profile",
    case: "α′ case",
    used_by: "Used by segments",
    direct_col: "Direct (local breakout)",
    denied_col: "Denied (403)",
    rest_col: "Everything else",
    rest_upstream: "security cloud (upstream)",
    rest_503: "refused with 503 (no security cloud configured)",
    cases: [
        "① 認証等: sign-in, licensing, AV updates, CRL/OCSP",
        "② + コミュニケーション: ① plus Teams and Exchange Online",
        "③ + 外部共有: ② plus SharePoint Online / OneDrive",
    ],
    custom: "custom",
    none: "none",

    s3: "Security cloud (upstream parents)",
    s3_intro: "Parents are tried in this order; the first one up is used. Credentials are never shown, only whether they are set.",
    s3_none: "No parent is configured. Every request that does not go direct is refused with 503; nothing is sent direct instead.",
    name: "Name",
    address: "Address",
    auth: "Authentication",
    yes: "yes",
    no: "no",
    health: "Health checks",
    interval: "Interval",
    timeout: "Timeout",
    fall: "Marked down after",
    rise: "Used again after",
    fall_n: "{n} consecutive failures",
    rise_n: "{n} consecutive successes",

    s4: "Categories that break out locally",
    s4_intro: "Every rule of every category that a reported profile breaks out, with where it comes from. A name goes direct only when it matches a domain pattern and the port is one of the rule's TCP ports; an IP address only when it lies in one of the rule's networks.",
    s4_patterns: "Patterns: an exact name matches only itself; *.example.com matches one or more labels in front of example.com, never example.com itself; *-my.example.com needs at least one character in place of * within the first label; a.*.example.com matches exactly one label in place of *.",
    s4_none: "No reported profile breaks out any category.",
    s4_others: "Also loaded, but broken out by no reported profile (their destinations are not direct):",
    direct_in: "Direct in profiles",
    description: "Description",
    source: "Source",
    list_version: "Version",
    retrieved: "Retrieved",
    endpoint_ids: "Endpoint ids",
    references: "References",
    notes: "Notes",
    rule: "Rule",
    endpoint_or_source: "Endpoint id / source",
    endpoint: "endpoint",
    tcp_ports: "TCP ports",
    udp_ports: "UDP ports",
    udp_note: "firewall only, not through the proxy",
    domains: "Domain patterns",
    networks: "Networks",

    s5: "Fail-closed evidence",
    s5_intro: "Every probe below was decided by the proxy's own decision function, the code that decides live traffic, once for each reported profile. The probes are derived from the allowlists: names that look like an allowlisted pattern but are not covered by any rule (a suffix appended, a character prepended, a dot replaced, the bare suffix of a wildcard, the wrong number of labels), IDN lookalikes with a Cyrillic letter (normalised to punycode as the proxy does), the first address after each allowlisted network, and shared-hosting names: none of them may go direct. To show that the allowlist works at all, upper-case and trailing-dot spellings of real names and the first address of networks are probed too: they go direct exactly in the profiles that break their category out. The expectation is worked out independently, from the pattern text. A contradiction is marked FAILURE and makes the command exit non-zero.",
    s5_counts: "{probes} probes × {profiles} profile(s) = {decisions} decisions, plus {clients} for clients in no segment. Bounded: at most {per_pattern} probes per pattern and {per_category} per category.",
    s5_no_parent: "No security cloud is configured: upstream below means the request is refused with 503.",
    s5_capped: "Categories whose probes reached the cap:",
    probes_col: "Probes",
    expect_direct_col: "Expected direct",
    expect_not_col: "Expected not direct",
    failures_col: "Failures",
    kinds: "Kinds of probe",
    legend: "Routes and reasons",
    unknown_clients: "Clients in no segment",
    unknown_intro: "A source address outside every segment asks for a name that breaks out for the segments: it must be denied (unknown_client).",
    no_unknown: "The segments cover every address; there is no client in no segment.",
    client: "Client",
    target: "Target",
    probe_list: "Probes",
    probe: "Probe",
    kind_from: "Kind (derived from)",
    expected: "Expected",
    got: "Got (route, reason, rule)",
    result: "Result",
    normalised: "normalised",
    invalid: "invalid target",
    end: "End of report.",

    s6: "Weakened safeguards",
    s6_intro: "Settings that open what the appliance would otherwise refuse. Each must be a decision someone made and can explain; lbo-proxy audit --strict fails while any is set.",
    s6_none: "None: every safeguard is as shipped.",
    setting: "Setting",
    value: "Value",
    opens: "What it opens",

    expect_words: ["direct", "not direct", "deny"],
    route_words: [
        "direct: local breakout over the municipality's own line",
        "upstream: to the security cloud",
        "deny: refused",
    ],
    reason_words: [
        "allowlisted: matched a rule of a category the profile breaks out",
        "not_allowlisted: no rule of such a category matched",
        "port_not_allowlisted: the name matched but the port is not allowed",
        "deny_rule: matched a rule of a category the profile denies",
        "unknown_client: the client is in no segment",
        "invalid_target: the target could not be normalised",
    ],
    kind_words: [
        "lookalike name",
        "IDN lookalike (Cyrillic letter)",
        "allowlisted name, other spelling",
        "first address after network",
        "address in network",
        "shared hosting",
        "name of a denied category",
    ],
};

static JA: Text = Text {
    code: "ja",
    gap: "",
    title: "ローカルブレイクアウト 外部監査用報告書",
    subtitle: "α′モデル：lbo-proxy の設定内容・出典・フェイルクローズの検証結果",
    verdict_ok: "{decisions} 件の判定はすべて期待どおりです。類似名、許可ネットワーク外のアドレス、共有ホスティングの名前は、いずれも直接接続されません。",
    verdict_fail: "FAILURE：{decisions} 件中 {failures} 件の判定が期待と異なります。この設定で運用を開始しないでください。",

    s1: "対象の特定",
    generated: "作成日時（UTC）",
    version: "lbo-proxy のバージョン",
    config_source: "設定ファイル",
    combined: "設定と許可リスト全体の SHA-256",
    hash_explain: "各ファイルのバイト列そのものの SHA-256 です。組込みの既定設定と組込みの許可リストは、バイナリに埋め込まれたテキストです（このバージョンのソース中の、下のコマンドに示すファイルと同一のバイト列）。全体の値は、各ファイルのハッシュ値を小文字16進で1行ずつ、表の順に並べたものの SHA-256 で、次のコマンドで再計算できます：",
    file: "ファイル",
    bytes: "バイト数",

    s2: "概要",
    s2_intro: "クライアントの送信元アドレスでセグメントが決まり（最も細かいネットワークが優先）、セグメントでプロファイルが決まります。プロファイルが直接接続とするカテゴリは、名前またはアドレスとポートがルールに一致したときだけ直接接続（ローカルブレイクアウト）し、拒否カテゴリは拒否（403）されます。どのセグメントにも属さない送信元は拒否（403）されます。",
    s2_no_parent: "それ以外はセキュリティクラウド経由となるべき通信ですが、上位プロキシが設定されていないため 503 で拒否され、直接接続されることはありません。",
    s2_parent: "それ以外はすべてセキュリティクラウド経由です。",
    segments: "セグメント",
    segment: "セグメント",
    client_networks: "クライアントネットワーク",
    tenant_col: "テナント制限（サインインを中継してヘッダーを付与）",
    tenant_off: "なし（サインインはそのままトンネル）",
    profiles: "プロファイル",
    profile: "プロファイル",
    case: "α′ のケース",
    used_by: "使用するセグメント",
    direct_col: "直接接続（ローカルブレイクアウト）",
    denied_col: "拒否（403）",
    rest_col: "それ以外",
    rest_upstream: "セキュリティクラウド経由",
    rest_503: "503 で拒否（セキュリティクラウド未設定）",
    cases: [
        "① 認証等：サインイン、ライセンス認証、ウイルス対策定義、CRL/OCSP",
        "② ＋コミュニケーション：① に Teams と Exchange Online を追加",
        "③ ＋外部共有：② に SharePoint Online / OneDrive を追加",
    ],
    custom: "カスタム",
    none: "なし",

    s3: "セキュリティクラウド（上位プロキシ）",
    s3_intro: "上から順に試し、稼働中の最初の上位プロキシを使います。認証情報そのものは表示せず、設定の有無だけを示します。",
    s3_none: "上位プロキシは設定されていません。直接接続とならない通信はすべて 503 で拒否され、代わりに直接接続されることはありません。",
    name: "名前",
    address: "アドレス",
    auth: "認証",
    yes: "あり",
    no: "なし",
    health: "ヘルスチェック",
    interval: "間隔",
    timeout: "タイムアウト",
    fall: "ダウンと判定",
    rise: "復帰と判定",
    fall_n: "連続 {n} 回の失敗",
    rise_n: "連続 {n} 回の成功",

    s4: "ローカルブレイクアウトするカテゴリ",
    s4_intro: "報告対象のプロファイルが直接接続とするカテゴリの全ルールと、その出典です。名前はドメインパターンに一致し、かつポートがルールの TCP ポートのいずれかであるときだけ、IP アドレスはルールのネットワークの範囲内にあるときだけ直接接続します。",
    s4_patterns: "パターンの意味：完全な名前はその名前だけに一致します。*.example.com は example.com の前に1つ以上のラベルがある名前に一致し、example.com 自体には一致しません。*-my.example.com は先頭ラベル内の * の位置に1文字以上が必要です。a.*.example.com は * の位置にちょうど1つのラベルがある名前に一致します。",
    s4_none: "報告対象のプロファイルに、直接接続とするカテゴリはありません。",
    s4_others: "読み込まれているが、報告対象のどのプロファイルも直接接続としないカテゴリ（宛先は直接接続されません）：",
    direct_in: "直接接続とするプロファイル",
    description: "説明",
    source: "出典",
    list_version: "版",
    retrieved: "取得日",
    endpoint_ids: "エンドポイント ID",
    references: "参考資料",
    notes: "注記",
    rule: "ルール",
    endpoint_or_source: "エンドポイント ID／出典",
    endpoint: "エンドポイント",
    tcp_ports: "TCP ポート",
    udp_ports: "UDP ポート",
    udp_note: "ファイアウォールのみ（プロキシは経由しない）",
    domains: "ドメインパターン",
    networks: "ネットワーク",

    s5: "監査用の検証（フェイルクローズ）",
    s5_intro: "以下の各検証対象は、実際の通信を判定するのと同じプロキシの判定関数で、報告対象のプロファイルごとに判定したものです。検証対象は許可リストから作成しています。許可パターンに似ているがどのルールにも該当しない名前（末尾への追加、先頭への文字追加、ドットの置換、ワイルドカードの親ドメインそのもの、ラベル数の違い）、キリル文字を混ぜた国際化ドメイン名（プロキシと同じく punycode に正規化）、許可ネットワークの直後のアドレス、共有ホスティングの名前で、これらはいずれも直接接続してはなりません。また許可リストが実際に機能していることを示すため、実在の名前の大文字表記・末尾ドット付き表記とネットワーク内のアドレスも検証し、そのカテゴリを直接接続とするプロファイルでだけ直接接続となることを確認しています。期待値は判定関数とは独立に、パターンの文字列から求めています。食い違いは FAILURE と表示し、コマンドは異常終了します。",
    s5_counts: "検証対象 {probes} 件 × プロファイル {profiles} 件 = 判定 {decisions} 件、ほかにセグメント外の送信元 {clients} 件。件数の上限：パターンあたり {per_pattern} 件、カテゴリあたり {per_category} 件。",
    s5_no_parent: "セキュリティクラウドが設定されていないため、下表の upstream は 503 で拒否されることを意味します。",
    s5_capped: "上限に達したカテゴリ：",
    probes_col: "検証対象数",
    expect_direct_col: "直接接続を期待",
    expect_not_col: "直接接続しないことを期待",
    failures_col: "FAILURE 件数",
    kinds: "検証対象の種類",
    legend: "経路と理由",
    unknown_clients: "どのセグメントにも属さない送信元",
    unknown_intro: "すべてのセグメントの外にある送信元アドレスから、セグメント内では直接接続となる名前を要求します。拒否（unknown_client）されなければなりません。",
    no_unknown: "セグメントがすべてのアドレスを含むため、セグメント外の送信元はありません。",
    client: "送信元",
    target: "宛先",
    probe_list: "検証の一覧",
    probe: "検証対象",
    kind_from: "種類（元のパターン）",
    expected: "期待",
    got: "結果（経路・理由・ルール）",
    result: "判定",
    normalised: "正規化後",
    invalid: "不正な宛先",
    end: "以上",

    s6: "弱められた安全策",
    s6_intro: "本来なら拒否するものを通す設定です。いずれも誰かが判断し説明できるものでなければなりません。設定がある間、lbo-proxy audit --strict は失敗します。",
    s6_none: "なし：すべての安全策が出荷時のままです。",
    setting: "設定",
    value: "値",
    opens: "開放されるもの",

    expect_words: ["直接接続", "直接接続しない", "拒否"],
    route_words: [
        "direct：直接接続（ローカルブレイクアウト）",
        "upstream：セキュリティクラウド経由",
        "deny：拒否",
    ],
    reason_words: [
        "allowlisted：直接接続とするカテゴリのルールに一致",
        "not_allowlisted：直接接続とするカテゴリのルールに一致しない",
        "port_not_allowlisted：名前は一致したがポートが許可されていない",
        "deny_rule：拒否カテゴリのルールに一致",
        "unknown_client：送信元がどのセグメントにも属さない",
        "invalid_target：宛先を正規化できない",
    ],
    kind_words: [
        "類似名",
        "国際化ドメイン名の類似名（キリル文字）",
        "許可名の別表記",
        "ネットワーク直後のアドレス",
        "ネットワーク内のアドレス",
        "共有ホスティング",
        "拒否カテゴリの名前",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_templates() {
        assert_eq!(
            fill(EN.fall_n, &[("n", "3".to_string())]),
            "3 consecutive failures"
        );
    }

    #[test]
    fn both_languages_have_every_placeholder() {
        for (en, ja) in [
            (EN.verdict_ok, JA.verdict_ok),
            (EN.verdict_fail, JA.verdict_fail),
            (EN.s5_counts, JA.s5_counts),
            (EN.fall_n, JA.fall_n),
            (EN.rise_n, JA.rise_n),
        ] {
            let keys = |s: &str| {
                let mut k: Vec<String> = s
                    .split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(k, _)| k.to_string()))
                    .collect();
                k.sort();
                k
            };
            assert_eq!(keys(en), keys(ja), "{en}");
        }
    }
}
