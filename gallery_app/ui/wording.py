"""What the window says about scores, in one place: bands, labels, the explanation."""

from __future__ import annotations

import math

MATCH = 0.5  # the model's estimated probability is at least even: a match
POSSIBLE = 0.2  # worth a look; below this a photo gets no word
CLOSEST_WHEN_NO_MATCH = 12  # how many photos "closest photos" shows when nothing matches

SCORE_MEANING = (
    "The score is the model's estimated probability that the photo shows your words "
    "(SigLIP's own sigmoid). 50% or more: a match; 20–50%: possible; below 20%: unlikely."
)

HOW_SCORES_WORK = f"""<h3>How scores work</h3>
<p>{SCORE_MEANING}</p>
<p><b>Match</b> (50% and up) and <b>possible</b> (20–50%) are written under each thumbnail;
matches come first. When nothing reaches 20%, the window says
<i>No confident match</i> and shows the few closest photos instead of the whole library.</p>
<p>The number comes from the cosine similarity between the photo and the text
(<code>a photo of …</code>), turned into a probability by
<code>sigmoid(T × (cosine − c))</code>. The model's own <i>T</i> (how sharply scores rise)
and <i>c</i> (the cosine that scores 50%) are the default. <i>Sharpness</i> changes T for
this window only; <i>Save as my calibration</i> keeps it (the same setting
<code>gallery-app tune</code> saves), <i>Reset</i> goes back to the saved one.</p>
<p><b>Synonyms</b> also search with other words for the same thing (dog → puppy). With
<i>Average</i> (the default) the words make one search for what they have in common, and the
score stays the model's probability; <i>Best word (OR)</i> takes each photo's best single word,
which can only raise scores. The debug panel (View › Debug scores) shows every word, each
photo's cosine and score.</p>
<p><b>Tags, titles, captions and file names</b> that contain your words lift a photo's score:
<code>score = visual + (1 − visual) × boost</code>, with a boost of at most 0.95 (your own
tags 0.9, keywords stored in the file 0.7, words of the file or folder name 0.4). The debug
panel says which one lifted it.</p>
<p><b>Find similar</b> (right-click a photo) scores photos against that photo, on a scale of
its own: two photos are much closer to each other than a photo is to any text.</p>"""

SEARCH_TIPS = """<h3>Search tips</h3>
<p>Describe what the photo shows, as you would to a person: <i>dog on the beach</i>,
<i>birthday cake with candles</i>, <i>red car at night</i>.</p>
<table cellspacing=6>
<tr><td><b>beach without people</b></td><td>leaves out photos that show people (also
<i>not people</i>, or <i>-people</i> for a single word)</td></tr>
<tr><td><b>beach and dog</b></td><td>both must be in the photo</td></tr>
<tr><td><b>"black and white" photo</b></td><td>quotes keep words together, operators
included</td></tr>
</table>
<p>Phrases that are one thing stay whole (<i>salt and pepper</i>, <i>rock and roll</i>);
<i>no</i>, <i>or</i> and <i>except</i> are searched as words. A photo's score for
<i>a and b</i> is P(a) × P(b); for <i>a without b</i> it is P(a) × (1 − P(b)). Your tags
count in each part: a photo you tagged <i>people</i> is left out of <i>beach without
people</i>.</p>
<p>The filter row (<i>Taken</i>, the folder, the order) narrows the search to a date range or
a folder and can put the matches in date order. <i>Hide below</i>, beside Sharpness, hides
photos that score under it.</p>"""


def band(score: float | None) -> str:
    """'match', 'possible' or '' for a calibrated score."""
    if score is None:
        return ""
    if score >= MATCH:
        return "match"
    if score >= POSSIBLE:
        return "possible"
    return ""


def percent(score: float) -> str:
    """A probability as people read it: '87%', '<1%' near zero, '>99%' near one.

    Rounded down, so a photo just under the match band never reads "50% possible"."""
    value = score * 100
    if 0 < value < 1:
        return "<1%"
    if 99 < value < 100:
        return ">99%"
    return f"{math.floor(value + 1e-9)}%"


def score_label(score: float | None) -> str:
    """Under a thumbnail: '87% match', '34% possible', '8%'."""
    if score is None:
        return ""
    word = band(score)
    return f"{percent(score)} {word}".strip()
