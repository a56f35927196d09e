"""English text normalisation (voxa.tts.normalize): what a reader would say."""

from __future__ import annotations

import pytest

from voxa.tts.normalize import cardinal, normalize, ordinal, year


@pytest.mark.parametrize("written, spoken", [
    ("It costs $9.99.", "It costs nine dollars and ninety nine cents."),
    ("He paid $1.", "He paid one dollar."),
    ("Only $0.50 left.", "Only fifty cents left."),
    ("Revenue hit $2.5 million.", "Revenue hit two point five million dollars."),
    ("A £20m deal and €3.50 each.", "A twenty million pounds deal and three euros and fifty cents each."),
    ("Meet at 9:30 am.", "Meet at nine thirty AM."),
    ("Meet at 9.30 a.m. sharp.", "Meet at nine thirty AM sharp."),
    ("Doors open at 7pm.", "Doors open at seven PM."),
    ("Lunch at 12:00.", "Lunch at twelve o'clock."),
    ("It ends at 10:05.", "It ends at ten oh five."),
    ("Born on 3/14/1987.", "Born on March fourteenth, nineteen eighty seven."),
    ("Due 2024-01-05.", "Due January fifth, twenty twenty four."),
    ("On Jan. 5th, 2023 we met.", "On January fifth, twenty twenty three we met."),
    ("On the 3rd of March it snowed.", "On the third of March it snowed."),
    ("The 21st century.", "The twenty first century."),
    ("About 1,250 people.", "About one thousand two hundred fifty people."),
    ("Up 3.5% today.", "Up three point five percent today."),
    ("It was -4 °C.", "It was minus four degrees Celsius."),
    ("In 1998 and 2005 and 1900.", "In nineteen ninety eight and two thousand five and nineteen hundred."),
    ("From 1997-2007.", "From nineteen ninety seven to two thousand seven."),
    ("Pages 10-20.", "Pages ten to twenty."),
    ("Call 555-1234.", "Call five five five, one two three four."),
    ("I ran 5 km in 25 min.", "I ran five kilometers in twenty five minutes."),
    ("Dr. Smith met Mr. Jones.", "Doctor Smith met Mister Jones."),
    ("She lives on Main St. in St. Louis.", "She lives on Main Street in Saint Louis."),
    ("Apples, pears, etc.", "Apples, pears, et cetera."),
    ("Fruit, e.g. apples.", "Fruit, for example apples."),
    ("Lakers vs. Celtics.", "Lakers versus Celtics."),
    ("Room #5 and No. 7.", "Room number five and number seven."),
    ("Tom & Jerry.", "Tom and Jerry."),
    ("Add 1/2 cup.", "Add one half cup."),
    ("MP3 and COVID-19.", "MP three and COVID nineteen."),
    ("Version 3.11 shipped.", "Version three point one one shipped."),
    ("No digits here.", "No digits here."),
])
def test_normalize(written, spoken):
    assert normalize(written) == spoken


def test_number_words():
    assert cardinal(0) == "zero"
    assert cardinal("1,000,000") == "one million"
    assert cardinal("-12") == "minus twelve"
    assert ordinal(1) == "first" and ordinal(112) == "one hundred twelfth"
    assert year(2010) == "twenty ten" and year(1905) == "nineteen oh five" and year(2000) == "two thousand"


def test_no_digits_survive_common_text():
    text = ("On 4/1/2025 at 10:15 pm, 3 of our 12 engineers spent $1,200.50 (about 15%) on "
            "the 2nd release; version 2 shipped 2025-04-03.")
    assert not any(ch.isdigit() for ch in normalize(text))


@pytest.mark.parametrize("written, spoken", [
    ("In the 1990s.", "In the nineteen nineties."),
    ("Back in the 80s and the '70s.", "Back in the eighties and the seventies."),
    ("The 2010s.", "The twenty tens."),
    ("A 5m cable, 5 m long, 10 s later.", "A five m cable, five meters long, ten seconds later."),
])
def test_decades_and_single_letter_units(written, spoken):
    # "1990s" is a decade, not 1990 seconds; a unit of one letter needs a space to count
    assert normalize(written) == spoken
