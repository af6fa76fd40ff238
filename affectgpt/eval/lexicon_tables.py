"""Hand-made tables of the built-in lexicon (read by scripts/build_lexicon.py; the stop lists also by the extractor).

The wheels are typed from the published figures (Willcox 1982, Parrott 2001, Plutchik 1980);
the seed words, families and synonyms are curated for the vocabulary that emotion
descriptions use. Format of a wheel: one level-1 group per line,
``level1: level2(level3, level3), level2``.
"""

WHEELS = {
    1: """
mad: hurt(jealous, selfish), hostile(sarcastic, hateful), angry(frustrated, furious), rage(irritated, enraged), \
critical(skeptical, distrustful), annoyed(impatient, dissatisfied)
scared: rejected(discouraged, insignificant), confused(bewildered, puzzled), helpless(inadequate, powerless), \
submissive(embarrassed, timid), insecure(inferior, vulnerable), anxious(overwhelmed, worried)
joyful: excited(daring, stimulated), sensuous(fascinated, amused), energetic(playful, lively), cheerful(delighted, \
happy), creative(inspired, imaginative), hopeful(optimistic, eager)
powerful: aware(discerning, attentive), proud(confident, successful), respected(valued, worthwhile), \
appreciated(admired, valuable), important(significant, determined), faithful(loyal, devoted)
peaceful: nurturing(caring, tender), trusting(secure, responsive), loving(affectionate, warm), intimate(close, \
sentimental), thoughtful(pensive, reflective), content(relaxed, serene, thankful)
sad: tired(sleepy, exhausted), bored(apathetic, indifferent), lonely(isolated, abandoned), depressed(miserable, \
hopeless), ashamed(stupid, humiliated), guilty(remorseful, regretful)
""",
    2: """
love: affection(adoration, fondness, liking, attraction, caring, tenderness, compassion, sentimentality), \
lust(arousal, desire, passion, infatuation), longing(longing)
joy: cheerfulness(amusement, bliss, gaiety, glee, jolliness, joviality, delight, enjoyment, gladness, happiness, \
jubilation, elation, satisfaction, ecstasy, euphoria), zest(enthusiasm, zeal, excitement, thrill, exhilaration), \
contentment(pleasure), pride(triumph), optimism(eagerness, hope), enthrallment(rapture), relief(relief)
surprise: surprise(amazement, astonishment)
anger: irritation(aggravation, agitation, annoyance, grouchiness, grumpiness), exasperation(frustration), \
rage(outrage, fury, wrath, hostility, ferocity, bitterness, hate, loathing, scorn, spite, vengefulness, dislike, \
resentment), disgust(revulsion, contempt), envy(jealousy), torment(torment)
sadness: suffering(agony, hurt, anguish), sadness(depression, despair, hopelessness, gloom, glumness, unhappiness, \
grief, sorrow, woe, misery, melancholy), disappointment(dismay, displeasure), shame(guilt, regret, remorse), \
neglect(alienation, isolation, loneliness, rejection, homesickness, defeat, dejection, insecurity, embarrassment, \
humiliation, insult), sympathy(pity)
fear: horror(alarm, shock, fright, terror, panic, hysteria, mortification), nervousness(anxiety, tenseness, \
uneasiness, apprehension, worry, distress, dread)
""",
    3: """
joy: ecstasy, joy, serenity
trust: admiration, trust, acceptance
fear: terror, fear, apprehension
surprise: amazement, surprise, distraction
sadness: grief, sadness, pensiveness
disgust: loathing, disgust, boredom
anger: rage, anger, annoyance
anticipation: vigilance, anticipation, interest
""",
}

# Emotion words that descriptions and label lists use, beyond the wheels (adjectives mostly).
SEED_WORDS = sorted(set("""
happy sad angry anxious nervous worried calm relaxed excited surprised confused frustrated disappointed
helpless serious tense curious doubtful suspicious dissatisfied impatient embarrassed shy proud grateful
thankful afraid scared frightened fearful terrified panicked upset annoyed irritated furious enraged
resentful bitter jealous envious guilty ashamed lonely bored tired exhausted depressed miserable gloomy
melancholy sorrowful heartbroken grieving hopeless hopeful optimistic pessimistic confident determined
resolute firm eager enthusiastic joyful cheerful delighted pleased satisfied content contented glad
amused playful humorous teasing sarcastic mocking contemptuous disdainful disgusted repulsed shocked
astonished amazed stunned startled puzzled perplexed bewildered uncertain unsure hesitant reluctant
uneasy restless agitated distressed troubled disturbed concerned apprehensive insecure vulnerable
timid embarrassed awkward uncomfortable displeased unhappy unsatisfied dejected discouraged defeated
desperate despairing anguished hurt wounded offended insulted humiliated aggrieved wronged indignant
outraged hostile aggressive defiant provoked stubborn arrogant smug complacent relieved comforted
peaceful serene tranquil composed gentle tender affectionate loving caring warm sympathetic
compassionate touched moved sentimental nostalgic wistful longing yearning admiring respectful
interested fascinated intrigued attentive focused excited thrilled elated euphoric ecstatic
blissful jubilant triumphant victorious passionate shocked alarmed horrified dread panic tension
stress stressed pressured overwhelmed helpless powerless weak fragile emotional sensitive
indifferent apathetic numb detached cold aloof distant dismissive impatient complaining grumpy
cranky irritable moody sulky sullen depressed downcast despondent forlorn mournful tearful crying
sobbing regretful remorseful apologetic sorry pitiful pity sympathy loneliness isolation alienated
neglected abandoned rejected betrayed deceived cheated trapped threatened intimidated submissive
obedient respectful humble modest polite sincere earnest solemn grave stern strict authoritative
commanding dominant assertive bold brave courageous daring adventurous lively energetic vigorous
excitement joy happiness sadness anger fear anxiety worry surprise disgust contempt shame guilt pride
love hate hatred envy jealousy grief sorrow relief gratitude hope despair confusion frustration
disappointment curiosity doubt suspicion boredom loneliness nervousness tension embarrassment
dissatisfaction impatience helplessness unease discomfort irritation annoyance resentment rage fury
amusement delight pleasure satisfaction contentment calmness serenity enthusiasm eagerness excitement
questioning skeptical sceptical disbelieving incredulous distrustful wary cautious vigilant alert
flustered anxiously panicky frantic hysterical shaken jittery fidgety edgy tense pleasant unpleasant
positive negative neutral dissatisfied disapproving critical accusatory blaming condemning reproachful
""".split()))

# Families the automatic links miss (first word is the preferred base when it is in the vocabulary).
HAND_FAMILIES = [
    ["afraid", "fear"], ["fearful", "fear"], ["anxious", "anxiety", "anxiousness"], ["joyful", "joy"],
    ["ashamed", "shame"], ["bored", "boredom"], ["jealous", "jealousy"], ["relieved", "relief"],
    ["proud", "pride"], ["angry", "anger"], ["sad", "sadness"], ["happy", "happiness"],
    ["confused", "confusion"], ["frustrated", "frustration"], ["worried", "worry"], ["surprised", "surprise"],
    ["excited", "excitement"], ["disappointed", "disappointment"], ["nervous", "nervousness"],
    ["curious", "curiosity"], ["doubtful", "doubt"], ["suspicious", "suspicion"], ["grateful", "gratitude"],
    ["embarrassed", "embarrassment"], ["lonely", "loneliness"], ["helpless", "helplessness"],
    ["dissatisfied", "dissatisfaction"], ["impatient", "impatience"], ["tense", "tension"],
    ["uneasy", "unease", "uneasiness"], ["calm", "calmness"], ["serene", "serenity"], ["guilty", "guilt"],
    ["envious", "envy"], ["hateful", "hate", "hatred"], ["grieving", "grief"], ["sorrowful", "sorrow"],
    ["disgusted", "disgust"], ["contemptuous", "contempt"], ["enthusiastic", "enthusiasm"],
    ["eager", "eagerness"], ["satisfied", "satisfaction"], ["content", "contentment"], ["delighted", "delight"],
    ["amused", "amusement"], ["annoyed", "annoyance"], ["irritated", "irritation"], ["resentful", "resentment"],
    ["furious", "fury"], ["hopeful", "hope"], ["despairing", "despair"], ["distressed", "distress"],
    ["stressed", "stress"], ["pleased", "pleasure"], ["uncomfortable", "discomfort"], ["shocked", "shock"],
    ["humiliated", "humiliation"], ["lonely", "loneliness"], ["isolated", "isolation"], ["loving", "love"],
    ["affectionate", "affection"], ["sympathetic", "sympathy"], ["compassionate", "compassion"],
]

# Curated synonym links (both directions) the WordNet first senses miss.
CURATED_SYNONYMS = {
    "happy": ["joyful", "cheerful", "glad", "pleased", "delighted", "content"],
    "sad": ["unhappy", "sorrowful", "dejected", "downcast", "gloomy", "melancholy", "depressed"],
    "angry": ["mad", "furious", "irate", "enraged", "indignant", "outraged"],
    "anxious": ["nervous", "worried", "uneasy", "apprehensive", "tense", "restless"],
    "worried": ["concerned", "troubled", "anxious"],
    "afraid": ["scared", "frightened", "fearful", "terrified"],
    "surprised": ["astonished", "amazed", "shocked", "startled", "stunned"],
    "confused": ["puzzled", "perplexed", "bewildered", "uncertain"],
    "doubtful": ["skeptical", "suspicious", "questioning", "uncertain", "distrustful", "incredulous"],
    "frustrated": ["exasperated", "annoyed"],
    "annoyed": ["irritated", "impatient", "displeased", "dissatisfied"],
    "disappointed": ["dissatisfied", "let down", "dismayed"],
    "calm": ["composed", "relaxed", "peaceful", "serene", "tranquil"],
    "excited": ["thrilled", "enthusiastic", "eager", "elated"],
    "serious": ["solemn", "grave", "stern", "earnest"],
    "helpless": ["powerless", "desperate"],
    "embarrassed": ["awkward", "ashamed", "shy"],
    "grateful": ["thankful", "appreciative"],
    "disgusted": ["repulsed", "revolted"],
    "contemptuous": ["disdainful", "scornful", "mocking", "sarcastic"],
    "hurt": ["wounded", "aggrieved", "offended"],
    "lonely": ["isolated", "alone"],
    "proud": ["triumphant", "confident"],
    "determined": ["resolute", "firm"],
    "curious": ["interested", "intrigued"],
    "relieved": ["comforted"],
    "bored": ["indifferent", "apathetic"],
}

# Words kept out of the vocabulary: generic or not emotions at all (wheel words are always kept).
NOT_EMOTION = set("""
emotion emotions emotional feeling feelings feel mood moods state tone expression attitude sense
like want need look face voice word words well good bad fine right great kind nice sure real
natural normal plain simple clear open still free even level flat affect sentiment
""".split())

# Words a lexicon scan of free text must not read as emotions: there they mostly describe
# the scene, the face or the voice ("a low voice", "warm light", "close-up").
SCAN_STOP = NOT_EMOTION | set("""
close warm cold cool hot low high light deep quick fast slow loud quiet soft hard strong weak
negative neutral important aware significant valuable care interest attention
mad crazy wild dark bright sharp rough smooth tight loose firm sweet bitter sour dry flat
""".split())
