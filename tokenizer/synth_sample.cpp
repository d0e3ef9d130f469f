// The text the synthetic models' tokenizer is trained on: original prose, Chinese and a few other scripts,
// code and numbers, written for ecf8 (not taken from any corpus). Changing it changes every synthetic
// tokenizer, so treat it as frozen.
#include "tokenizer/synth_sample.h"

namespace ecf8::text {

namespace {

constexpr std::string_view kSample =
    // English prose: stories, a guide, letters
    R"sample(The Lighthouse Keeper's Notebook

Every morning at a quarter past six, Mara climbed the ninety-one steps of the old lighthouse and wrote down
what she saw. The wind came from the west most days, carrying salt and the smell of kelp drying on the rocks
below. She noted the colour of the sea, the height of the swell, the number of fishing boats leaving the
harbour, and anything else that seemed worth remembering. Her notebook was not a scientific record, although
it had numbers in it. It was closer to a conversation with herself, held over many years, about a place that
changed a little every day and yet stayed recognisably the same.

On clear days she could see the island of Vell, a low green shape on the horizon with a white church on its
northern hill. On grey days the island vanished, and the sea seemed to go on forever. She liked both kinds of
days. The clear ones made her feel that the world was small and knowable; the grey ones reminded her that it
was not.

People in the village sometimes asked why she kept writing. The light had been automatic for twenty years.
Nobody needed a keeper anymore, and the harbour authority paid her only a small sum to check the batteries and
report any damage after storms. "Because somebody should be paying attention," she would answer, and most
people nodded as if that explained everything.

In the spring of her eleventh year, a young researcher named Tomas arrived with a box of instruments and a
letter from the university. He wanted to measure how the coastline was moving. The cliffs to the south had
been losing ground for decades, and the village council worried about the road that ran along their edge.
Tomas asked whether he could mount a small camera on the gallery rail, pointing south, to photograph the
cliffs every hour. Mara agreed, on the condition that he explain what the pictures showed.

He kept his promise. Every few weeks he sent her a summary: how many centimetres the cliff edge had retreated,
where the largest falls had happened, how the rate compared with earlier surveys. She copied his numbers into
her notebook beside her own observations. Slowly the two records began to talk to each other. A week of strong
easterly winds in her notes lined up with a sudden fall in his measurements. A dry summer, which she had
described as "quiet, the grass brown, the sea flat as a plate," matched a season in which the cliffs barely
moved at all.

By the end of the second year, Tomas had enough data to write a paper. He asked Mara whether he could include
a few pages of her notebook as an appendix, because they captured things his instruments could not: the way
fog settled in the cove before a storm, the behaviour of the seabirds, the days when the fishermen stayed
home. She said yes, and then, after thinking about it overnight, she said yes again, more firmly.

The paper was not famous. It was read by perhaps two hundred people, most of them engineers who worked on
coastal roads. But one of those engineers used it to argue for moving the road inland before the next winter,
and the council listened. The old road is now a footpath, and in some places it simply ends in the air, where
the cliff has fallen away beneath it.

Mara still climbs the steps each morning. She still writes down the wind, the swell and the boats. Sometimes
she adds a line about the footpath, noting how much of it is left.

A Short Guide to Bread

Bread is one of the oldest prepared foods, and one of the simplest. Flour, water, salt and yeast are enough.
What makes bread interesting is not the list of ingredients but the time and care that turn them into
something with structure, flavour and a crust that crackles as it cools.

Start with the flour. Wheat flour contains proteins that, when mixed with water and worked, form a network
called gluten. This network traps the gas produced by the yeast and lets the dough rise. Flours with more
protein make chewier loaves with larger holes; flours with less protein make softer, more tender bread. For a
first loaf, an ordinary bread flour with about twelve percent protein is a good choice.

Water matters more than people expect. Too little, and the dough is stiff and the loaf dense. Too much, and
the dough spreads and becomes difficult to shape. A useful starting point is seventy parts water to one
hundred parts flour by weight. Bakers call this seventy percent hydration. Once you are comfortable, try
seventy-five or even eighty percent, and notice how the crumb opens up.

Salt does three jobs. It seasons the bread, it tightens the gluten, and it slows the yeast so that the dough
ferments more evenly. Two parts salt to one hundred parts flour is typical. Forget the salt once and you will
never forget it again: the loaf will taste flat, almost like cardboard.

Yeast is alive. It eats the sugars in the flour and releases carbon dioxide and alcohol. The gas lifts the
dough; the alcohol and other by-products give bread much of its aroma. Commercial yeast works quickly and
predictably. A sourdough starter, which is a culture of wild yeasts and bacteria kept alive in a jar of flour
and water, works more slowly and adds a gentle sourness.

The steps are always roughly the same. Mix the ingredients until no dry flour remains. Let the dough rest for
half an hour, so the flour absorbs the water. Then fold it: lift one side, stretch it up, and fold it over the
rest. Turn the bowl and repeat. Do this a few times every half hour for two hours. The dough will become
smoother, stronger and more elastic.

After the first rise, shape the dough into a round or an oval, place it in a floured basket, and let it rise
again. This second rise can happen at room temperature for an hour or two, or in the refrigerator overnight.
The cold rise develops more flavour and makes the timing easier, because you can bake whenever you are ready
the next day.

Bake in a very hot oven, ideally inside a covered pot for the first twenty minutes. The lid traps steam, which
keeps the surface soft long enough for the loaf to expand fully. Then remove the lid and bake until the crust
is deep brown. Pale bread is underbaked bread. Let the loaf cool for at least an hour before cutting it; the
inside is still cooking as it cools.

If your first loaf is flat, dense or oddly shaped, do not worry. Every baker has made hundreds of imperfect
loaves. Write down what you did, change one thing next time, and keep going.

Letters From a Small Station

Dear Jun,

The train only stops here twice a day, once in the morning and once in the late afternoon, so I have plenty of
time to write. The station is a single platform with a wooden shelter, a bench, a timetable under cracked
plastic, and a vending machine that sells hot tea in cans. I have become very fond of the vending machine. It
hums all night like a patient animal.

I came here to finish the translation, as you know, and I have made good progress. The book is harder than I
expected. The author writes long sentences that fold back on themselves, and every time I think I have found
the right rhythm in English, a paragraph arrives that breaks it. Yesterday I spent three hours on a single
sentence about a river. In the end I split it into four short sentences, which felt like cheating, but the
result reads more like the original than my faithful attempts did.

The village is quiet. There is a post office, a shop that also sells fishing tackle, and a restaurant that
serves one dish per day. On Monday it was noodles in broth with spring onions; on Tuesday, grilled fish with
rice; today, a curry so mild that the owner apologised for it. I told her it was perfect, which was true.

In the evenings I walk along the river. Herons stand in the shallows like grey umbrellas left open. The
mountains turn purple, then dark blue, then disappear. I think about the book, and about you, and about
whether I should stay another month.

Write soon. Tell me about the city, the noise, the new office, the people who annoy you. I miss all of it a
little, even the parts I complained about.

Yours,
Aki

Dear Aki,

Your letter arrived on a rainy Thursday, which was exactly the right day for it. The office is as loud as
ever. They have installed a coffee machine that announces each drink in a cheerful synthetic voice, and half
the team wants to throw it out of the window. I secretly like it. It says "Your cappuccino is ready" with such
confidence.

Stay another month. The book deserves it, and so do you. I will send you the dictionary you left on my shelf,
and a box of the biscuits from the bakery near the bridge, if they survive the post.

Jun

)sample"
    // English prose: explanations, notes, a dialogue, a report, questions
    R"sample(How Computers Remember

A computer's memory is arranged like a very long street of numbered houses. Each house holds one byte, and
each byte holds a number between zero and two hundred and fifty-five. Programs find their data by address, the
number of the house, and read or write the bytes stored there. Everything a computer knows, from the letters
in this sentence to the colours of a photograph, is written on that street as bytes.

Reading from memory is fast, but not as fast as the processor would like. A modern processor can perform
several operations in the time it takes to fetch a single value from main memory. To hide this delay,
processors keep small, fast copies of recently used data in caches. When a program reads the same data again,
or data that sits next to it, the cache answers immediately. Programs that walk through memory in order, one
house after another, run much faster than programs that jump around at random.

This is why the layout of data matters so much. Storing a list of records as one array of structures keeps
each record's fields together; storing it as a structure of arrays keeps each field's values together. If a
loop only needs one field from every record, the second layout lets the cache bring in exactly the values it
needs and nothing else.

Graphics processors take the idea further. They run thousands of threads at once, and they expect neighbouring
threads to read neighbouring addresses. When they do, the hardware combines the requests into a few wide
transactions. When they do not, each thread waits for its own slow trip to memory, and the whole processor
crawls.

Compression trades computation for memory traffic. If data can be stored in fewer bytes and decoded quickly
enough, the processor spends less time waiting and more time working. Large language models are a good
example: their weights are enormous, and moving them from memory to the arithmetic units is often the slowest
part of producing each word. Shrinking the weights, even by a modest fraction, can make the whole system
faster, provided the decoder keeps up.

Notes on Walking in the City

Cities are designed for many things, and walking is rarely the first of them. Yet the best way to understand a
city is still on foot, slowly, with no particular destination. Cars see a city as a network of routes between
places. Walkers see the places themselves: the bakery that opens at five, the courtyard hidden behind a green
door, the staircase that connects two streets at different heights.

Start early, before the traffic. Pick a direction and follow it until something interesting appears, then turn
toward it. Avoid main roads when a side street runs parallel. Look up, because the upper floors of buildings
often keep details that the ground floors lost long ago: carved stone, old painted signs, balconies full of
plants.

Stop often. Sit on benches, steps and low walls. Watch how people move, where they pause, which corners gather
crowds and which stay empty. You will start to notice the invisible rules of the place: the café where workers
stand at the counter for exactly four minutes, the square where old men play cards every afternoon, the bridge
where couples take the same photograph again and again.

Carry a small notebook. Write down street names, smells, snatches of conversation, prices, the time the
streetlights came on. After a week these notes will become a map that no app could give you, a map of how the
city feels rather than where it is.

A Conversation About Rain

"Do you think it will rain this afternoon?" asked the old man at the bus stop.

"The forecast said there was a sixty percent chance," I answered.

"Sixty percent. What does that even mean? Either it rains or it does not."

"It means that on days like this one, with these clouds and this pressure and this wind, it rains about six
times out of ten."

He considered this for a while. "So the forecast is not about today. It is about all the days that look like
today."

"More or less."

"Then I will take my umbrella," he said, "because today looks like a lot of wet days I remember."

The bus came. It did not rain. He carried his umbrella all the way home anyway, and I suspect he felt that the
sixty percent had been right in its own way.

On Learning a Musical Instrument as an Adult

Children learn instruments with a kind of fearless repetition that adults find hard to recover. They play the
same wrong note fifty times without embarrassment, and on the fifty-first time it comes out right. Adults, by
contrast, know exactly how bad they sound, and that knowledge can be paralysing.

The trick is to practise in small, boring pieces. Take four bars of music. Play them slowly, so slowly that
every note can be correct. Repeat them until they are dull. Then play them a little faster. Then move on to
the next four bars. This feels like no progress at all for weeks, and then one day you realise you can play a
whole page without stopping.

Record yourself, even though listening is uncomfortable. The recording hears what you cannot hear while your
hands are busy: the rushed beat before a difficult passage, the note that is always slightly flat, the phrase
that ends abruptly because you forgot to breathe.

Above all, play music you love. Exercises matter, but they are not the reason anyone picks up a violin or sits
down at a piano. Keep one piece that is a little too hard for you, and return to it every month. Its slow
surrender is the best measure of how far you have come.

Weather Report for the Northern Valleys

Tomorrow will begin cold and clear, with frost in sheltered places and patches of fog along the river. The fog
should lift by mid-morning, leaving a bright day with light winds from the north-east. Highs will reach eight
to eleven degrees in the valleys and three to five degrees on the higher ground.

Cloud will thicken from the west during the evening, and light rain is expected to reach the coast before
midnight. The rain will spread inland overnight, turning to sleet and snow above six hundred metres. Drivers
on the mountain passes should expect difficult conditions by early Thursday.

Thursday will be grey and damp, with outbreaks of rain and a fresh south-westerly wind. It will feel
noticeably milder, with highs of twelve or thirteen degrees. Rivers may rise quickly where the snow melts, and
people living near the lower fords are advised to check for updates.

The weekend looks more settled. High pressure should build from the south, bringing dry, sunny weather on
Saturday and Sunday, although nights will again be cold, with a risk of frost in the valleys.

Questions People Ask About Bees

Why do bees dance? A honeybee that finds a good patch of flowers returns to the hive and performs a waggle
dance on the comb. The angle of the dance tells the other bees the direction of the flowers relative to the
sun, and the length of the waggle tells them the distance. It is one of the few known examples of an animal
communicating the location of something it cannot see.

Do all bees live in hives? No. Most of the world's bee species are solitary. Each female builds her own small
nest, often in the ground or in a hollow stem, and raises her young alone. Solitary bees rarely sting and are
important pollinators of fruit trees and wild flowers.

Why are bees in trouble? Several causes work together: loss of flowering habitat, certain pesticides,
parasites such as the varroa mite, diseases that spread between managed and wild colonies, and changes in
climate that shift flowering times. No single fix solves everything, but planting a variety of flowers that
bloom from early spring to late autumn helps almost every kind of bee.

Can I keep bees in the city? Many people do. Rooftop hives are common in large cities, and urban bees often do
well because gardens, parks and street trees provide a long season of varied flowers. Before starting, check
local rules, talk to experienced beekeepers, and consider whether your neighbours will be comfortable with the
idea.

)sample"
    // Chinese, then short passages in other languages and symbols
    R"sample(城市里的早晨

每天早上六点，街角的小店就开门了。老板是一位五十多岁的阿姨，她总是先把热水烧开，然后把包子和豆浆摆在门口的桌
子上。上班的人匆匆走过，有的人买一个包子边走边吃，有的人停下来，坐在小凳子上喝一碗热豆浆。阿姨记得很多老顾客
的口味：谁喜欢甜的，谁不要葱，谁每天都要两个肉包。

我搬到这条街已经三年了。刚来的时候，我觉得这里太吵，汽车的喇叭声、自行车的铃声、楼下邻居的说话声，从早到晚都
停不下来。后来我慢慢习惯了，甚至开始喜欢这种热闹。周末的时候，我会去附近的公园散步。公园里有人打太极拳，有人
跳广场舞，还有几位老人坐在树下下象棋，旁边围着一群看热闹的人。

学习一门新的语言

学习语言最重要的是坚持。每天花二十分钟，比一个星期花三个小时更有效果。开始的时候可以从简单的句子学起，比如问
路、买东西、点菜。慢慢地，你会发现自己能听懂更多的内容，也能说出更长的句子。

不要害怕犯错误。说错了没有关系，别人通常会理解你的意思，也会很高兴你在努力学习他们的语言。多听、多说、多读、
多写，这四个方面都很重要。看电影、听音乐、读新闻，都是很好的练习方法。

关于计算机和数据

计算机处理的一切信息，最终都是数字。文字、图片、声音和视频，都要先变成一串串的字节，才能被保存和传输。为了节
省空间和时间，人们发明了各种压缩方法。有的压缩方法可以完全恢复原来的数据，叫做无损压缩；有的方法会丢掉一些不
太重要的细节，叫做有损压缩。

大型语言模型有几千亿个参数，存储和传输这些参数需要大量的内存和带宽。如果能把参数压缩得更小，同时保持计算结果
完全一样，就可以用更少的显卡运行同样的模型。这是一个很实际的工程问题，也是一个很有意思的研究方向。

天气和季节

春天来了，树上长出了新的叶子，花园里的花也开了。天气越来越暖和，人们脱下了厚厚的冬衣。夏天很热，有时候会下大
雨，雨停以后空气特别清新。秋天是我最喜欢的季节，天高气爽，树叶变成了黄色和红色。冬天很冷，北方常常下雪，孩子
们在雪地里堆雪人、打雪仗。

日本語の短い文章

駅前の小さな喫茶店は、朝七時に開きます。店主は毎朝同じ時間にコーヒー豆をひいて、カウンターを丁寧にふきます。
常連のお客さんは新聞を読みながら、ゆっくりとモーニングセットを食べます。トーストとゆで卵とサラダ、それに熱い
コーヒー。値段は四百八十円です。雨の日は特に混んでいて、窓ガラスが少し曇ります。

한국어 문장

오늘은 날씨가 아주 좋습니다. 친구와 함께 공원에 가서 자전거를 탔습니다. 점심에는 김밥과 떡볶이를 먹었습니다.

Quelques phrases en français

Le marché du samedi commence très tôt. Les maraîchers installent leurs étals avant le lever du soleil : des
tomates, des courgettes, des pommes de terre nouvelles et des bouquets d'herbes fraîches. À huit heures, la
place est déjà pleine de monde, et l'odeur du pain chaud se mêle à celle du café.

Ein paar Sätze auf Deutsch

Der Zug nach München hatte zwanzig Minuten Verspätung. Die Fahrgäste warteten geduldig auf dem Bahnsteig,
tranken Kaffee aus Pappbechern und schauten immer wieder auf die Anzeigetafel. Als der Zug endlich einfuhr,
stiegen alle schnell ein, und niemand beschwerte sich.

Unas frases en español

La biblioteca del barrio abre de lunes a sábado. Por las tardes se llena de estudiantes que preparan sus
exámenes y de vecinos mayores que leen el periódico junto a la ventana. La bibliotecaria conoce a casi todos
por su nombre.

Несколько предложений по-русски

Зимой в деревне очень тихо. Снег лежит на крышах домов, дым поднимается из труб, и только собаки иногда лают
вдалеке. По вечерам люди пьют чай и рассказывают друг другу старые истории.

Μερικές προτάσεις στα ελληνικά

Το καλοκαίρι η θάλασσα είναι ήρεμη και ζεστή. Τα παιδιά παίζουν στην άμμο και οι ψαράδες επιστρέφουν στο
λιμάνι το απόγευμα.

بعض الجمل بالعربية

في الصباح الباكر يفتح المخبز أبوابه، وتنتشر رائحة الخبز الطازج في الشارع كله.

कुछ वाक्य हिंदी में

सुबह की ठंडी हवा में पार्क बहुत सुंदर लगता है। बच्चे खेल रहे हैं और बुज़ुर्ग धीरे-धीरे टहल रहे हैं।

Symbols and emoji: ☀️ 🌧️ ❄️ 🍞 🐝 🚉 ✓ ✗ → ← ↑ ↓ ∑ ∫ √ ∞ ≤ ≥ ≠ ± × ÷ ° € £ ¥ © ® ™ … — – « » „ “ ” ‘ ’

)sample"
    // code and configuration in several languages
    R"sample(// A small ring buffer with a fixed capacity, written for a logging example.
#include <array>
#include <cstddef>
#include <optional>

template <typename T, std::size_t Capacity>
class RingBuffer {
public:
    bool push(const T& value) {
        if (size_ == Capacity) return false;
        items_[(head_ + size_) % Capacity] = value;
        ++size_;
        return true;
    }

    std::optional<T> pop() {
        if (size_ == 0) return std::nullopt;
        T value = items_[head_];
        head_ = (head_ + 1) % Capacity;
        --size_;
        return value;
    }

    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

private:
    std::array<T, Capacity> items_{};
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

int count_words(const std::string& text) {
    int words = 0;
    bool in_word = false;
    for (char c : text) {
        const bool letter = std::isalnum(static_cast<unsigned char>(c)) != 0;
        if (letter && !in_word) ++words;
        in_word = letter;
    }
    return words;
}

# Python: summarise temperature readings from a CSV file.
import csv
import statistics
from pathlib import Path


def load_readings(path: Path) -> dict[str, list[float]]:
    readings: dict[str, list[float]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            readings.setdefault(row["station"], []).append(float(row["celsius"]))
    return readings


def summarise(readings: dict[str, list[float]]) -> None:
    for station, values in sorted(readings.items()):
        mean = statistics.fmean(values)
        spread = max(values) - min(values)
        print(f"{station:<12} n={len(values):4d} mean={mean:6.2f} spread={spread:5.2f}")


if __name__ == "__main__":
    summarise(load_readings(Path("readings.csv")))

class Counter:
    """Counts how often each key is seen."""

    def __init__(self):
        self.counts = {}

    def add(self, key, amount=1):
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key]

    def most_common(self, n=3):
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]

// JavaScript: debounce a function so it runs at most once per pause.
function debounce(fn, waitMs) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

const onResize = debounce(() => {
  console.log(`window is ${window.innerWidth}x${window.innerHeight}`);
}, 250);
window.addEventListener("resize", onResize);

// Rust: parse "key=value" lines into a map, skipping comments.
use std::collections::BTreeMap;

fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            map.insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    map
}

-- SQL: monthly totals per customer.
SELECT customer_id,
       date_trunc('month', ordered_at) AS month,
       COUNT(*) AS orders,
       SUM(amount_cents) / 100.0 AS total
FROM orders
WHERE ordered_at >= '2024-01-01'
GROUP BY customer_id, month
ORDER BY month, total DESC;

#!/usr/bin/env bash
set -euo pipefail
for file in logs/*.log; do
    lines=$(wc -l < "$file")
    errors=$(grep -c "ERROR" "$file" || true)
    echo "$file: $lines lines, $errors errors"
done
mkdir -p build && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build -j 8

{
  "name": "weather-station",
  "version": "1.4.2",
  "sensors": [
    {"id": "t1", "kind": "temperature", "unit": "C", "interval_s": 60},
    {"id": "h1", "kind": "humidity", "unit": "%", "interval_s": 300},
    {"id": "w1", "kind": "wind", "unit": "m/s", "interval_s": 10}
  ],
  "upload": {"url": "https://example.org/api/v2/readings", "retries": 3, "enabled": true}
}

model:
  hidden_size: 7168
  num_layers: 61
  num_experts: 256
  experts_per_token: 8
  vocab_size: 129280
training:
  batch_size: 4096
  learning_rate: 2.2e-4
  warmup_steps: 2000

<div class="card">
  <h2>Opening hours</h2>
  <ul>
    <li>Monday to Friday: 08:00 - 18:30</li>
    <li>Saturday: 09:00 - 14:00</li>
  </ul>
</div>

)sample"
    // numbers: tables, prices, dates, arithmetic
    R"sample(Station log, week 14

Date        Time   Temp(C)  Humidity  Wind(m/s)  Rain(mm)
2024-04-01  06:00     3.2      91%        2.1       0.0
2024-04-01  12:00    11.8      64%        4.7       0.0
2024-04-01  18:00     8.4      72%        3.3       0.2
2024-04-02  06:00     5.0      88%        1.9       1.4
2024-04-02  12:00     9.6      79%        6.2       3.8
2024-04-02  18:00     7.1      85%        5.5       2.0
2024-04-03  06:00     1.7      95%        0.8       0.0
2024-04-03  12:00    13.9      52%        3.0       0.0
2024-04-03  18:00    10.2      61%        2.4       0.0

Totals: rain 7.4 mm over 3 days; mean temperature 7.88 C; max gust 9.7 m/s at 13:42 on 2 April.

Invoice 2024-0317
  3 x notebook (A5, dotted)        @  4.50  =  13.50
  2 x pen (black, 0.5 mm)          @  1.25  =   2.50
  1 x desk lamp                    @ 29.99  =  29.99
  Subtotal                                     45.99
  VAT 20%                                       9.20
  Total                                        55.19 EUR

Arithmetic practice: 12 + 30 = 42; 7 * 8 = 56; 144 / 12 = 12; 2^10 = 1024; 3.14159 * 2 = 6.28318; 1/3 =
0.333...; 99 - 101 = -2; 1,000,000 / 8 = 125,000.
Powers of two: 1 2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384 32768 65536 131072 262144 524288
1048576.
Primes below 100: 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
97.
Phone: +44 20 7946 0958. Postcode: SW1A 1AA. Order #A-77312-B. Version v2.10.3-rc1. IP 192.168.1.20:8080.
Times: 00:00, 06:30, 12:45, 18:15, 23:59. Dates: 1999-12-31, 2000-01-01, 2024-02-29, 03/15/2025, 15.03.2025.
Coordinates: 51.5074 N, 0.1278 W; 35.6762 N, 139.6503 E; -33.8688, 151.2093.
Percentages: 5%, 12.5%, 33%, 66.7%, 99.9%, 100%. Temperatures: -40 C, -3.5 C, 0 C, 21 C, 37.0 C, 100 C.
Large numbers: 671 billion parameters, 37 billion active; 14.8 trillion tokens; 2.788 million GPU hours.
第3季度的销售额比去年同期增长了12.5%，达到4,820万元。2025年1月1日起实施新规定。

)sample"
    // English prose: a story, questions, a recipe, instructions, meeting notes
    R"sample(The Repair Café

On the first Saturday of every month, the community hall on Mill Lane turns into a workshop. Volunteers set up
long tables, plug in soldering irons and sewing machines, and lay out screwdrivers, glue, thread and spare
fuses. Then the doors open, and people arrive carrying the things they would otherwise throw away: a toaster
that no longer toasts, a lamp with a frayed cable, a coat with a broken zip, a child's bicycle with a wobbling
wheel.

The rule is simple. You do not leave your broken thing and come back later. You sit beside the volunteer and
help. Together you open the case, look inside, and try to understand what went wrong. Often the fault is
small: a loose wire, a blown fuse, a worn belt, a spring that slipped out of place. Sometimes it is hopeless,
and the volunteer explains why, so that at least the owner knows the object was not thrown away for nothing.

Ellen, who runs the electrical table, used to be a telephone engineer. She has a patient way of asking
questions. "When did it stop working? Did it smell of anything? Did it make a noise first?" Most people are
surprised by how much they can remember once somebody asks. A radio that crackled before it went silent
probably has a dirty switch. A kettle that trips the power as soon as it is switched on probably has water
where water should not be.

Last month a teenager brought in a games controller that had stopped charging. Ellen showed him how to open it
without breaking the clips, how to check the charging port under a magnifying glass, and how to clean the
corroded contacts with a little alcohol on a cotton bud. It worked the first time. He looked at it for a long
moment and then asked whether he could come back next month to help at the table. He has been there every
month since.

The café keeps a logbook. Over four years it has recorded one thousand eight hundred and twelve repairs
attempted and one thousand one hundred and forty-six completed. Nobody has calculated exactly how much rubbish
that has kept out of the landfill, but everyone agrees it is a lot. More importantly, it has changed how
people in the neighbourhood think about their things. A broken object is no longer the end of a story. It is a
question.

Frequently Asked Questions About the Garden Allotments

How do I apply for a plot? Fill in the form at the town library or on the council website. Plots are offered
in the order applications arrive. The waiting list is currently about eighteen months for a full plot and six
months for a half plot.

How much does it cost? A full plot is forty-five pounds per year and a half plot is twenty-five pounds. Water
is included. Discounts are available for pensioners and students.

What can I grow? Almost anything that is legal and does not spread into neighbouring plots. Fruit trees must
be on dwarf rootstocks and planted at least two metres from the path. Bees may be kept only with written
permission from the committee.

Can I put up a shed? Yes, up to two metres by one and a half metres, made of wood, and painted green or brown.
Greenhouses of the same size are also allowed.

What happens if I cannot look after my plot? Tell the secretary as soon as you can. If a plot is left untended
for a whole season without explanation, it may be offered to the next person on the waiting list.

A Recipe for Lentil Soup

Ingredients: two tablespoons of olive oil, one onion, two carrots, two sticks of celery, three cloves of
garlic, one teaspoon of ground cumin, half a teaspoon of smoked paprika, two hundred grams of red lentils, one
tin of chopped tomatoes, one litre of vegetable stock, the juice of half a lemon, salt and pepper.

Method: Chop the onion, carrots and celery into small pieces. Warm the oil in a large pan over a medium heat
and cook the vegetables for ten minutes, stirring now and then, until they are soft. Add the garlic and spices
and cook for one more minute. Rinse the lentils and add them to the pan with the tomatoes and stock. Bring to
the boil, then lower the heat and simmer for twenty-five minutes, until the lentils have fallen apart. Blend
half of the soup if you like it thicker. Season with salt, pepper and lemon juice. Serve with bread.

Instructions for the New Coffee Machine

1. Fill the water tank to the line marked MAX. Use cold, fresh water.
2. Switch the machine on and wait until the green light stops flashing.
3. Place a cup under the spout.
4. Press the small cup button for an espresso or the large cup button for a long coffee.
5. To make milk foam, fill the jug one third full with cold milk, insert the steam wand, and press the steam
button.
6. Empty the drip tray and the grounds container at the end of each day.
7. If the red light comes on, the machine needs descaling. Follow the instructions on page 14 of the manual.

Do not put your hands under the spout while the machine is running. Do not use sparkling water. Do not leave
milk in the jug overnight.

Meeting Notes, Project Kestrel

Present: Priya, Daniel, Hannah, Oluwaseun, Marco.
1. Status: the data pipeline now handles all twelve regional feeds. Two feeds still arrive late on Mondays;
Daniel will contact the providers.
2. Performance: the nightly job takes 3 hours 40 minutes, down from 5 hours 10 minutes after the caching
change. Target remains under 3 hours.
3. Testing: Hannah added end-to-end tests for the export step. Coverage of the parser is 87%. Flaky test in
the scheduler module is still open (ticket KES-482).
4. Release: version 0.9 is planned for the 14th. Marco will prepare the release notes; Priya will review them.
5. Any other business: the team lunch moves to Thursday because of the public holiday.
Next meeting: Tuesday at 10:00 in room 3B or online.

)sample";

}  // namespace

std::string_view synth_sample_text() { return kSample; }

}  // namespace ecf8::text
