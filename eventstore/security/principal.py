"""Kafka principals, and the mapping of a TLS certificate's subject to one.

Kafka names a mutual-TLS client by its certificate's subject in RFC 2253 form
(`CN=alice,OU=eng,O=acme`, most specific first) and lets `ssl.principal.mapping.rules`
rewrite it: a list of `RULE:pattern/replacement/[L|U]` and `DEFAULT`, first match wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANONYMOUS = "User:ANONYMOUS"

_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "emailAddress": "EMAILADDRESS",
}


def _escape(value: str) -> str:
    escaped = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def subject_name(subject: tuple) -> str:
    """The RFC 2253 string of a subject as `ssl.SSLSocket.getpeercert()` gives it."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append(
            "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        )
    return ",".join(rdns)


@dataclass(frozen=True)
class MappingRule:
    """One rule of `ssl.principal.mapping.rules`; a rule without a pattern is DEFAULT."""

    pattern: re.Pattern | None = None
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        """The mapped name, or None when this rule does not match."""
        if self.pattern is None:
            return name
        match = self.pattern.fullmatch(name)
        if match is None:
            return None
        replacement = re.sub(r"\$(\d+)", r"\\\1", self.replacement.replace("\\/", "/"))
        mapped = match.expand(replacement)
        if self.case == "L":
            return mapped.lower()
        if self.case == "U":
            return mapped.upper()
        return mapped


_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:[^/\\]|\\.)*)/((?:[^/\\]|\\.)*)/([LU]?))\s*(?:,|$)")


def parse_rules(text: str) -> tuple[MappingRule, ...]:
    """The rules of an `ssl.principal.mapping.rules` value; ValueError on a malformed one."""
    rules = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _RULE.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"invalid ssl.principal.mapping.rules at {text[position:]!r}")
        if match.group(1):
            rules.append(MappingRule())
        else:
            try:
                pattern = re.compile(match.group(2).replace("\\/", "/"))
            except re.error as error:
                raise ValueError(
                    f"invalid pattern in ssl.principal.mapping.rules: {error}"
                ) from error
            rules.append(MappingRule(pattern, match.group(3), match.group(4)))
        position = match.end()
    return tuple(rules) or (MappingRule(),)


def map_subject(rules: tuple[MappingRule, ...], subject: str) -> str:
    """The Kafka principal (`User:...`) for a certificate subject under the rules."""
    for rule in rules:
        mapped = rule.apply(subject)
        if mapped is not None:
            return f"User:{mapped}"
    return f"User:{subject}"
