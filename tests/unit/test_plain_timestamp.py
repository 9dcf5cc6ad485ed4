"""`is_plain_timestamp` checks by position what PLAIN_TIMESTAMP's regex checks, for every
text Python's ISO-8601 parser takes: the timestamps sent as written rest on it."""

from __future__ import annotations

from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.sink.copytext import PLAIN_TIMESTAMP, is_plain_timestamp

digits = st.sampled_from("0123456789١٢")  # Arabic-Indic digits too: the regex's \d takes them
two = st.sampled_from(["00", "01", "10", "12", "23", "28", "59"]) | st.sampled_from(["60", "99", "١٢", "1"])
dates = st.one_of(st.tuples(st.sampled_from(["2026", "0001", "9999", "٢٠٢٦"]), st.just("-"), two, st.just("-"), two),
                  st.tuples(st.just("2026"), st.just("-W"), st.sampled_from(["47", "01"]), st.just("-"), st.just("1")),
                  st.tuples(st.just("2026"), st.just("-"), st.sampled_from(["326", "001"]), st.just(""), st.just("")),
                  st.tuples(st.just("2026"), two, two, st.just(""), st.just("")))
fraction = st.one_of(st.just(""), st.tuples(st.sampled_from(".,"), st.text(digits, min_size=0, max_size=9)).map("".join))
times = st.one_of(st.tuples(two, st.just(""), st.just(""), st.just(""), st.just("")),
                  st.tuples(two, st.sampled_from([":", ""]), two, st.just(""), st.just("")),
                  st.tuples(two, st.sampled_from([":", ""]), two, st.sampled_from([":", ""]), two))
offsets = st.one_of(st.sampled_from(["", "Z", "z", "+00", "-05", "+0530", "+05:30", "+05:30:15", "+053015",
                                     "+05:30:15.5", "-00:00", "+5", "+05:3"]))
ends = st.sampled_from(["", "", "", "\x00", "\x00\x00", " "])  # Python's parser ignores a trailing NUL


@settings(max_examples=3000, deadline=None)
@example(("2026", "-W", "47", "-", "1"), "T", ("10", ":", "00", "", ""), "", "", "")  # the forms the check
@example(("2026", "-", "11", "-", "22"), "T", ("10", ":", "00", ":", "00"), ",5", "", "")  # tells apart by
@example(("2026", "-", "11", "-", "22"), "T", ("10", ":", "00", "", ""), "", "+05:30:15", "")  # position
@example(("2026", "-", "11", "-", "22"), " ", ("10", ":", "00", ":", "00"), ".5", "+053015", "")
@example(("2026", "-", "11", "-", "22"), "T", ("10", ":", "00", ":", "00"), ".123", "Z", "")
@example(("2026", "-", "11", "-", "22"), "T", ("10", ":", "00", ":", "00"), "", "", "\x00")
@example(("2026", "-", "01", "-", "01"), "T", ("00", ":", "00", "", ""), ".", "Z", "")  # a fraction of minutes
@example(("2026", "-", "01", "-", "01"), "T", ("00", ":", "00", ":", "00"), ".", "Z", "")  # a fraction without digits
@given(dates, st.sampled_from(["T", " ", "t", "x", "_"]), times, fraction, offsets, ends)
def test_the_check_by_position_agrees_with_the_regex(date, separator, time, frac, offset, end):
    text = "".join(date) + separator + "".join(time) + frac + offset + end
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return  # the check's precondition: Python's parser took the text
    assert is_plain_timestamp(text) == (PLAIN_TIMESTAMP.fullmatch(text) is not None), text
