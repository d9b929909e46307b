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
<p><b>Synonyms</b> also search with other words for the same thing (dog → puppy); a photo's
score is the best over those words. The debug panel (View › Debug scores) shows every word,
each photo's cosine and score.</p>"""


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
