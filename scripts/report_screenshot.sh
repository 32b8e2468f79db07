#!/usr/bin/env bash
# Renders a run report in headless Chromium and saves a screenshot, to check by eye that
# report.html renders as a page on its own. Not part of `make test` (CI has no Chromium).
#
#   scripts/report_screenshot.sh LAKE_OR_HTML OUT.png [HEIGHT]
#
# LAKE_OR_HTML: a report.html, or a local lake folder (its newest reports/run_id=*/report.html).
# HEIGHT: the window height in pixels (default 7000; the page is captured down to it).
# Needs Debian's `chromium` (apt-get install -y chromium), or CHROMIUM=/path/to/chrome.
set -euo pipefail

if [[ $# -lt 2 ]]; then
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
src=$1
out=$2
height=${3:-7000}

if [[ -d $src ]]; then
	html=$(ls -t "$src"/reports/run_id=*/report.html 2>/dev/null | head -n 1 || true)
	[[ -n $html ]] || { echo "no reports/run_id=*/report.html under $src" >&2; exit 1; }
else
	html=$src
fi
[[ -f $html ]] || { echo "$html: no such file" >&2; exit 1; }

chrome=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[[ -n $chrome ]] || { echo "no chromium found: apt-get install -y chromium (or set CHROMIUM)" >&2; exit 1; }

# Self-contained: nothing may be fetched. The SVG namespace is an identifier, not a request.
if grep -Eo '(src|href)="[^"#][^"]*"|@import|url\(' "$html" | grep -v 'http://www.w3.org/2000/svg' >/dev/null; then
	echo "$html refers to outside resources:" >&2
	grep -Eo '(src|href)="[^"#][^"]*"|@import|url\(' "$html" >&2
	exit 1
fi

abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
mkdir -p "$(dirname "$out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: Chromium refuses to run as root otherwise (containers, CI).
"$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
	--window-size=1200,"$height" --virtual-time-budget=3000 \
	--screenshot="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")" "file://$abs" 2>"$profile/chromium.log" ||
	{ cat "$profile/chromium.log" >&2; exit 1; }
[[ -s $out ]] || { echo "chromium wrote no screenshot" >&2; cat "$profile/chromium.log" >&2; exit 1; }
echo "rendered $html -> $out"
