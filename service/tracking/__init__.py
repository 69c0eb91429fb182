"""Click ids and URL policy: what the redirect, links, programs and conversions share."""
