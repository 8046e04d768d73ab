"""Settings of the TAB client (spec nztab-api §1, §2, §9.9 and scheduling §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from services import __version__
from services.common.config import ConfigError, Env

DEFAULT_BASE_URL: Final = "https://api.tab.co.nz"
API_PREFIX: Final = "/affiliates/v1"
DEFAULT_USER_AGENT: Final = f"Raceday/{__version__}"
IDENTIFICATION_VARIABLES: Final = ("NZTAB_FROM", "NZTAB_PARTNER", "NZTAB_PARTNER_ID")


def normalise_base_url(value: str) -> str:
    """The origin only: trailing slashes and a duplicated `/affiliates/v1` are stripped.

    Raises ValueError for anything that is not http(s)://host[:port] after stripping.
    """
    text = value.strip().rstrip("/")
    while text.lower().endswith(API_PREFIX):
        text = text[: -len(API_PREFIX)].rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) origin such as {DEFAULT_BASE_URL}, got {value!r}")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"must be an origin without a path, got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class TabSettings:
    """Where the TAB is, how we identify ourselves, and which meetings the baseline keeps.

    `from_`, `partner` and `partner_id` are sent verbatim as From, X-Partner and
    X-Partner-ID; None omits the header (only allowed when identification is not
    required, e.g. tests of the simulator's identification check).
    """

    base_url: str = DEFAULT_BASE_URL
    from_: str | None = None
    partner: str | None = None
    partner_id: str | None = None
    user_agent: str = DEFAULT_USER_AGENT
    timeout_s: float = 5.0
    max_concurrency: int = 8
    countries: tuple[str, ...] = ("NZ", "AUS")
    categories: tuple[str, ...] = ("T", "H")

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")

    @classmethod
    def from_env(cls, env: Env | None = None, *, require_identification: bool = True) -> TabSettings:
        """Read the NZTAB_* and BASELINE_* variables; ConfigError names the first bad one.

        With `require_identification=False` missing identification variables are
        allowed (their headers are then not sent).
        """
        env = env or Env()
        identification: dict[str, str | None] = {}
        for name in IDENTIFICATION_VARIABLES:
            value = env.optional_text(name)
            if value is None and require_identification:
                raise ConfigError(name, "is required: the TAB asks every caller to identify itself")
            identification[name] = value
        raw_url = env.text("NZTAB_BASE_URL", DEFAULT_BASE_URL)
        try:
            base_url = normalise_base_url(raw_url)
        except ValueError as exc:
            raise ConfigError("NZTAB_BASE_URL", str(exc)) from None
        return cls(
            base_url=base_url,
            from_=_header_value("NZTAB_FROM", identification["NZTAB_FROM"]),
            partner=_header_value("NZTAB_PARTNER", identification["NZTAB_PARTNER"]),
            partner_id=_header_value("NZTAB_PARTNER_ID", identification["NZTAB_PARTNER_ID"]),
            user_agent=env.text("NZTAB_USER_AGENT", DEFAULT_USER_AGENT),
            timeout_s=env.number("NZTAB_TIMEOUT_S", 5.0, minimum=0.1, maximum=60.0),
            max_concurrency=env.integer("NZTAB_MAX_CONCURRENCY", 8, minimum=1, maximum=256),
            countries=_codes(env, "BASELINE_COUNTRIES", ("NZ", "AUS")),
            categories=_codes(env, "BASELINE_CATEGORIES", ("T", "H")),
        )

    def headers(self) -> dict[str, str]:
        """The request headers, values exactly as configured."""
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
        }
        for name, value in (
            ("From", self.from_),
            ("X-Partner", self.partner),
            ("X-Partner-ID", self.partner_id),
        ):
            if value is not None:
                headers[name] = value
        return headers


def _header_value(name: str, stripped: str | None) -> str | None:
    """The variable's value as set: only surrounding whitespace is dropped, nothing rewritten."""
    if stripped is None:
        return None
    for char in stripped:
        if char in "\r\n" or (ord(char) < 0x20 and char != "\t"):
            raise ConfigError(name, "must not contain control characters (it is sent as an HTTP header)")
    return stripped


def _codes(env: Env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    codes = tuple(code.upper() for code in env.csv(name, default))
    if not codes:
        raise ConfigError(name, "must list at least one code")
    return codes
