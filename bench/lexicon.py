"""Words and sentence shapes for the benchmark corpus (:mod:`bench.corpus`).

A news article of 3 KB has ~500 words of ~250 distinct types, about half of them function
words, and a corpus of thousands of articles has a vocabulary of thousands: keyword
extraction, NER and shingling all cost what the vocabulary makes them cost.  The corpus
builds sentences from the shapes below with words drawn from these lists, the more common
words more often (Zipf-like weights), so each article reads like wire copy and no two
articles share much beyond names and stock phrases.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NOUNS = _words(
    "government agency budget bill ceasefire coalition committee company conflict court crisis deal "
    "decision deficit delegation economy election embassy energy export factory farmer frontier "
    "growth harbour hospital industry inquiry investment investor island judge labour law leader "
    "loan market minister mission network office parliament partner party pension plan police "
    "policy port price programme project protest province railway reform region report revenue "
    "road ruling sanction school season sector security settlement shortage shipment spokesperson "
    "strategy strike subsidy summit supply survey talks tariff tax team technology treaty trial "
    "truce union university vaccine village vote wage warning water weapon witness worker "
    "airline airport ambassador analyst army audit authority bank battery border bridge campaign "
    "candidate capital charity chemical citizen climate commission community contract corridor "
    "council currency customer dam debt defence demand diplomat district doctor drought dispute "
    "earnings emission employer engineer estimate evidence family festival fleet flood forecast "
    "fund grain grid hearing household housing inflation insurer interest lawmaker license "
    "manufacturer mayor measure merger militia mine museum negotiator nurse operator outbreak "
    "passenger patient payment pipeline planner platform plant poll population prosecutor "
    "refinery refugee regulator reservoir resident retailer satellite scientist shareholder "
    "shelter soldier station student supplier surplus teacher tenant tourist trader traffic "
    "tribunal troop utility vessel veteran voter warehouse wildfire"
)

ADJECTIVES = _words(
    "new former senior local national regional federal public private foreign domestic key major "
    "early late final recent annual urgent fragile broad narrow costly cautious decisive "
    "temporary permanent strong weak rising falling modest sharp sudden gradual wider deeper "
    "fresh lengthy brief rare common unusual crucial serious severe mild bitter heated quiet "
    "northern southern eastern western coastal rural urban industrial digital economic political "
    "military diplomatic legal financial environmental medical agricultural commercial technical "
    "historic landmark controversial bipartisan unprecedented preliminary independent official "
    "emergency interim joint multilateral"
)

VERBS = _words(
    "approved blocked delayed announced rejected backed proposed criticised defended extended "
    "suspended reviewed expanded reduced raised cut doubled secured signed launched postponed "
    "questioned welcomed condemned confirmed denied revealed disclosed reported warned urged "
    "pledged promised threatened challenged overturned upheld finalised drafted negotiated "
    "restored closed reopened replaced appointed dismissed accused cleared funded financed "
    "imported exported shipped built repaired inspected audited investigated monitored tracked "
    "predicted estimated calculated forecast revised tightened eased lifted imposed"
)

ADVERBS = _words(
    "sharply slowly quickly briefly quietly publicly privately formally informally repeatedly "
    "reluctantly narrowly broadly largely partly fully heavily openly cautiously firmly "
    "unexpectedly immediately eventually initially"
)

CONNECTORS = (
    "but",
    "while",
    "even as",
    "after",
    "although",
    "because",
    "as",
    "and",
    "before",
    "until",
)

SAY = ("said", "told reporters", "wrote in a statement", "said in an interview", "told lawmakers", "added")

TIMES = (
    "on {day}",
    "last week",
    "earlier this month",
    "in {month}",
    "late on {day}",
    "over the weekend",
    "this year",
    "since {month}",
)

#: Sentence shapes: {clause} is subject + verb + object (+ a prepositional phrase).
SHAPES = (
    "{subject} {verb} {object} {time}, {connector} {clause}.",
    "{subject} {say} {time} that {clause}.",
    "“{Clause}. {Clause},” {person} {say}.",
    "{Time}, {clause}, according to {org}.",
    "{Clause} {connector} {clause}.",
    "{Clause}, {analyst} of {org} {say}.",
    "The {adj} {noun} {pp}, {subject} {say}, {verb} {object}.",
    "{Subject} {adverb} {verb} {object} {pp} {time}.",
    "About {n1:,} {nouns} {pp} were affected, {org} {say}.",
    "{Subject} {verb} {object} worth {n2} billion dollars {time}.",
    "{Clause}; {clause}.",
    "Asked about {object}, {person} {say} that {clause}.",
)

PREPOSITIONS = ("in", "across", "near", "outside", "beyond", "throughout")
PP_SHAPES = (
    "in {city}",
    "after the {adj} {noun}",
    "despite {adj} {nouns}",
    "over the {noun} {prep} {city}",
    "for {n4} {nouns}",
    "under the {adj} {noun}",
    "ahead of the {noun}",
    "with {org}",
)

# -- names, places and stock sentences ---------------------------------------------------------

PEOPLE = [
    ("President", "Emmanuel Macron", "France"),
    ("Chancellor", "Olaf Scholz", "Germany"),
    ("Prime Minister", "Narendra Modi", "India"),
    ("President", "Luiz Inácio Lula da Silva", "Brazil"),
    ("Prime Minister", "Fumio Kishida", "Japan"),
    ("President", "Cyril Ramaphosa", "South Africa"),
    ("Secretary-General", "António Guterres", "the United Nations"),
    ("Prime Minister", "Justin Trudeau", "Canada"),
    ("President", "Recep Tayyip Erdoğan", "Turkey"),
    ("Prime Minister", "Giorgia Meloni", "Italy"),
    ("President", "Volodymyr Zelenskyy", "Ukraine"),
    ("Secretary of State", "Marco Rubio", "the United States"),
    ("Governor", "Gavin Newsom", "California"),
    ("Mayor", "Sadiq Khan", "London"),
    ("Finance Minister", "Nirmala Sitharaman", "India"),
    ("President", "Claudia Sheinbaum", "Mexico"),
    ("Prime Minister", "Anthony Albanese", "Australia"),
    ("President", "Javier Milei", "Argentina"),
]
ANALYSTS = [
    "Maria Gonzalez",
    "David Chen",
    "Amara Okafor",
    "Lena Fischer",
    "Rahul Mehta",
    "Sophie Laurent",
    "James O'Brien",
    "Yuki Tanaka",
    "Fatima Al-Sayed",
    "Peter Novak",
    "Grace Mwangi",
    "Tomás Herrera",
]
ORGS = [
    "the International Monetary Fund",
    "the World Health Organization",
    "the European Central Bank",
    "the Federal Reserve",
    "NATO",
    "the World Bank",
    "the Red Cross",
    "Amnesty International",
    "the Brookings Institution",
    "the Center for Strategic and International Studies",
    "Reuters",
    "the European Commission",
    "the African Union",
    "Human Rights Watch",
]
PLACES = [
    ("WASHINGTON", "AP"),
    ("LONDON", "Reuters"),
    ("PARIS", "AFP"),
    ("BERLIN", "AP"),
    ("TOKYO", "Kyodo"),
    ("NEW DELHI", "AP"),
    ("NAIROBI", "Reuters"),
    ("BRUSSELS", "AFP"),
    ("MEXICO CITY", "AP"),
    ("SYDNEY", "AAP"),
    ("SÃO PAULO", "Reuters"),
    ("JOHANNESBURG", "AP"),
    ("KYIV, Ukraine", "AP"),
    ("GENEVA", "AFP"),
    ("OTTAWA", "CP"),
    ("ROME", "ANSA"),
]
CITIES = [
    "Moscow",
    "Beijing",
    "Kyiv",
    "Madrid",
    "Lagos",
    "Cairo",
    "Seoul",
    "Istanbul",
    "Toronto",
    "Chicago",
    "Mumbai",
    "Jakarta",
    "Warsaw",
    "Lisbon",
    "Athens",
    "Bogotá",
]
TOPICS = [
    ("inflation", "interest rates", "the central bank's next meeting", "consumer prices"),
    ("the ceasefire", "peace talks", "a prisoner exchange", "humanitarian corridors"),
    ("the election", "the opposition coalition", "voter turnout", "the campaign's final week"),
    ("the heat wave", "wildfires", "emergency water supplies", "crop losses"),
    ("the trade dispute", "tariffs on steel", "export controls", "supply chains"),
    ("the vaccine rollout", "hospital capacity", "a new variant", "public health funding"),
    ("the strike", "wage negotiations", "the transport union", "rail services"),
    ("the earthquake", "rescue teams", "temporary shelters", "reconstruction costs"),
    ("the budget", "pension reform", "the deficit", "spending cuts"),
    ("the climate summit", "emissions targets", "coal plants", "renewable energy investment"),
]
SENTENCES = [
    "{analyst}, a senior fellow at {org}, said the government had little room to manoeuvre on {t1}.",
    "“We are doing everything we can, but {t2} cannot be solved overnight,” {person} told reporters in {city}.",
    "About {n1:,} people have been affected so far, according to figures released by {org} on {day}.",
    "The talks in {city} follow weeks of negotiations over {t1} and {t2}, officials said.",
    "Critics, including {analyst}, argue that {t3} has been neglected for years and now costs {n2} billion dollars.",
    "{org} estimated that {t0} could reduce growth by {pct} percentage points this year.",
    "Protesters gathered outside the parliament in {city} on {day}, demanding action on {t2}.",
    "In a statement, {org} said it was “deeply concerned” about {t3} and called for restraint.",
    "Speaking after a meeting with {person2}, {person} said both sides had agreed to keep talking about {t1}.",
    "The plan, first reported in {month}, would set aside {n2} billion dollars for {t3}.",
    "Opposition lawmakers in {country} have demanded an inquiry into {t0}, saying the public deserves answers.",
    "“This is a defining moment for {country},” said {analyst}, who has studied {t1} for two decades.",
    "Markets in {city} fell {pct} percent on {day} as investors weighed the risks of {t0}.",
    "{person2} is expected to travel to {city} next week for further talks on {t2}.",
    "Local officials reported {n3:,} new cases linked to {t3} in the past {n4} days.",
    "The agreement must still be approved by lawmakers, who return from recess on {day2}.",
]
OPENERS = [
    "{title} {person} is set to hold talks on {day} with leaders from {city} as pressure grows over {t0}.",
    "{title} {person} said on {day} that {t0} would dominate the coming weeks, despite concerns over {t1}.",
    "Officials in {country} were scrambling on {day} to respond to {t0}, with {org} warning of {t3}.",
    "{title} {person} faced mounting criticism on {day} over the handling of {t0} and {t1}.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
