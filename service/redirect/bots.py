"""Bot and link-preview detection by user agent, for clicks that count for nothing."""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

# No browser sends a user agent this long; scanning junk with the crawler regex is not free.
MAX_USER_AGENT_LEN = 1024

# Link-preview fetchers fire the moment a link is pasted into a chat, so they matter most
# here. crawlerdetect knows them today; the list keeps them caught if it ever drops one.
# Lowercase substrings, chosen not to match the in-app browsers (FBAN, LinkedInApp, ...).
_PREVIEW_TOKENS = (
    "slackbot",
    "slack-imgproxy",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "twitterbot",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "applebot",
    "skypeuripreview",
    "googlebot",
    "bingbot",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "vkshare",
    "mattermost-bot",
    "google-pagerenderer",
    "bitlybot",
)
_PREVIEW_PREFIXES = ("whatsapp/", "viber/")

_detector = CrawlerDetect()


def is_bot(user_agent: str | None) -> bool:
    """True for crawlers, link-preview fetchers, HTTP tools and a missing user agent."""
    if not user_agent:
        # Every browser sends one; a client that leaves it out is a script.
        return True
    return _classify(user_agent)


@lru_cache(maxsize=4096)
def _classify(user_agent: str) -> bool:
    ua = user_agent.strip()
    if not ua or len(ua) > MAX_USER_AGENT_LEN:
        return True
    lowered = ua.lower()
    if lowered.startswith(_PREVIEW_PREFIXES) or any(t in lowered for t in _PREVIEW_TOKENS):
        return True
    # curl, wget, python-requests and the like are flagged here too: a click from a command
    # line still gets its redirect, it just earns nothing.
    return bool(_detector.is_crawler(ua))
