// The share scheduler (shares/shares.hpp) on a fake clock: a queue of batches simulated
// here claim after claim, the way the claim transaction drives it, with what each batch
// got counted.
#include "shares/shares.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>

using namespace klingq;
using namespace klingq::shares;
using namespace std::chrono_literals;

namespace {

struct SimBatch {
  std::string key;
  int weight = 1;
  int priority = 0;
  std::int64_t queued = 0;
  bool paused = false;
  Caps caps;
  double pass = 0;
  std::int64_t got = 0;  // submits taken
  std::optional<int> first_at;  // the tick of its first submit
};

// The state klingq.batches keeps plus a fake clock: one claim per tick (a request window
// that hands out `slots` submits a tick).
struct Sim {
  std::vector<SimBatch> batches;
  double vtime = 0;
  TimePoint now = from_epoch_ms(1795608000000);  // 2026-11-25T10:40:00Z
  int tick = 0;

  SimBatch& operator[](const std::string& key) {
    for (auto& b : batches) {
      if (b.key == key) return b;
    }
    FAIL("no batch " << key);
    return batches.front();
  }
  SimBatch& add(const std::string& key, std::int64_t queued, int weight = 1, int priority = 0) {
    SimBatch b;
    b.key = key;
    b.queued = queued;
    b.weight = weight;
    b.priority = priority;
    batches.push_back(b);
    return batches.back();
  }

  // One claim: the runnable batches (queued, not paused) in pass order, as the claim's
  // candidates statement lists them; the plan; every pick taken.
  std::vector<std::string> claim(std::int64_t slots = 1) {
    const auto today = day_key(std::nullopt, now);
    std::vector<std::size_t> index;
    std::vector<Batch> in;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      auto& b = batches[i];
      if (b.paused || b.queued == 0) continue;
      auto caps = b.caps;
      caps.available = b.queued;
      index.push_back(i);
      in.push_back({b.key, b.priority, b.weight, b.pass, room_of(caps, today)});
    }
    std::vector<std::size_t> order(in.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) {
      return in[x].pass < in[y].pass || (in[x].pass == in[y].pass && in[x].key < in[y].key);
    });
    std::vector<Batch> sorted;
    std::vector<std::size_t> sorted_index;
    for (auto o : order) {
      sorted.push_back(in[o]);
      sorted_index.push_back(index[o]);
    }
    auto p = plan(sorted, slots, vtime);
    auto advanced = advance(sorted, p.picks, vtime);
    vtime = advanced.vtime;
    std::vector<std::string> out;
    for (std::size_t j = 0; j < sorted.size(); ++j) {
      auto& b = batches[sorted_index[j]];
      b.pass = advanced.pass[j];
      b.queued -= p.count[j];
      b.got += p.count[j];
      b.caps.in_flight += p.count[j];
      b.caps.day_count = day_count_after(b.caps, today, p.count[j]);
      b.caps.day_key = today;
      if (b.caps.budget_left) *b.caps.budget_left -= p.count[j] * b.caps.cheapest_cost;
      if (p.count[j] > 0 && !b.first_at) b.first_at = tick;
    }
    for (auto i : p.picks) out.push_back(sorted[i].key);
    ++tick;
    now += 6s;  // 10 requests a minute
    return out;
  }
  void run(int claims, std::int64_t slots = 1) {
    for (int i = 0; i < claims; ++i) claim(slots);
  }
  void reset_counts() {
    for (auto& b : batches) b.got = 0;
  }
};

}  // namespace

TEST_CASE("shares: equal weights split the submits evenly, from the first claim on") {
  Sim sim;
  sim.add("a", 100000);
  sim.add("b", 100000);
  sim.run(1000);
  CHECK(sim["a"].got == 500);
  CHECK(sim["b"].got == 500);
  SUBCASE("every prefix is fair within one submit") {
    Sim s;
    s.add("a", 1000);
    s.add("b", 1000);
    for (int i = 0; i < 200; ++i) {
      s.claim();
      CHECK(std::abs(s["a"].got - s["b"].got) <= 1);
    }
  }
}

TEST_CASE("shares: weights 3:1 give three submits for one, one claim or many") {
  Sim sim;
  sim.add("big", 100000, 3);
  sim.add("small", 100000, 1);
  sim.run(1000);
  CHECK(sim["big"].got == 750);
  CHECK(sim["small"].got == 250);
  SUBCASE("claims of four submits: three and one each time") {
    Sim s;
    s.add("big", 100000, 3);
    s.add("small", 100000, 1);
    for (int i = 0; i < 50; ++i) {
      auto picks = s.claim(4);
      REQUIRE(picks.size() == 4);
      CHECK(std::count(picks.begin(), picks.end(), "big") == 3);
    }
  }
}

TEST_CASE("shares: a batch that appears late gets its share at once, without a burst for the time before") {
  Sim sim;
  sim.add("large", 100000);
  sim.run(500);  // alone: every submit
  CHECK(sim["large"].got == 500);
  sim.add("late", 20);
  sim.reset_counts();
  sim.claim();
  CHECK(sim["late"].first_at == 500);  // the very next claim
  sim.run(29);
  // 20 rows: it takes every other submit until they are done, then the large one all.
  CHECK(sim["late"].got == 15);
  CHECK(sim["large"].got == 15);
  sim.run(30);
  CHECK(sim["late"].got == 20);
  CHECK(sim["large"].got == 40);
}

TEST_CASE("shares: a paused batch leaves its share to the others and does not catch up after") {
  Sim sim;
  sim.add("a", 100000);
  sim.add("b", 100000);
  sim.run(100);
  sim["b"].paused = true;
  sim.reset_counts();
  sim.run(200);
  CHECK(sim["a"].got == 200);
  CHECK(sim["b"].got == 0);
  sim["b"].paused = false;
  sim.reset_counts();
  sim.run(100);
  CHECK(sim["a"].got == 50);
  CHECK(sim["b"].got == 50);
}

TEST_CASE("shares: a batch capped by its budget, max_parallel or daily cap gives the rest away") {
  Sim sim;
  sim.add("a", 100000);
  auto& b = sim.add("b", 100000);
  SUBCASE("budget: three jobs' worth") {
    b.caps.budget_left = 350;
    b.caps.cheapest_cost = 100;
    sim.run(100);
    CHECK(sim["b"].got == 3);
    CHECK(sim["a"].got == 97);
  }
  SUBCASE("max_parallel 2 with nothing completing") {
    b.caps.max_parallel = 2;
    sim.run(100);
    CHECK(sim["b"].got == 2);
    CHECK(sim["a"].got == 98);
    // Two complete: it takes two more, then waits again.
    sim["b"].caps.in_flight = 0;
    sim.reset_counts();
    sim.run(10);
    CHECK(sim["b"].got == 2);
  }
  SUBCASE("daily cap 5: five a day, five more the next day") {
    b.caps.daily_cap = 5;
    sim.run(100);
    CHECK(sim["b"].got == 5);
    sim.now += 24h;
    sim.reset_counts();
    sim.run(100);
    CHECK(sim["b"].got == 5);
    CHECK(sim["a"].got == 95);
  }
}

TEST_CASE("shares: a higher priority goes first, a held one hands its submits down") {
  Sim sim;
  sim.add("urgent", 10, 1, 5);
  sim.add("normal", 1000, 1, 0);
  sim.add("normal2", 1000, 1, 0);
  sim.run(10);
  CHECK(sim["urgent"].got == 10);
  CHECK(sim["normal"].got == 0);
  sim.run(10);
  CHECK(sim["normal"].got == 5);
  CHECK(sim["normal2"].got == 5);
  SUBCASE("an urgent batch at its max_parallel does not hold the lower ones up") {
    auto& capped = sim.add("urgent-capped", 100, 1, 5);
    capped.caps.max_parallel = 1;
    sim.reset_counts();
    sim.run(10);
    CHECK(sim["urgent-capped"].got == 1);
    CHECK(sim["normal"].got + sim["normal2"].got == 9);
  }
}

TEST_CASE("shares: nothing starves, whatever the weights") {
  Sim sim;
  sim.add("heavy", 1000000, 10000);
  sim.add("light", 1000000, 1);
  sim.run(20002);
  // One in 10,001: at the start and after each 10,000 of the heavy one.
  CHECK(sim["light"].got >= 2);
  CHECK(sim["light"].got <= 3);
  CHECK(sim["heavy"].got == 20002 - sim["light"].got);
}

TEST_CASE("shares: the passes move only for the submits actually taken") {
  std::vector<Batch> batches = {{"a", 0, 1, 4.0, unlimited}, {"b", 0, 2, 4.0, unlimited}};
  auto p = plan(batches, 3, 4.0);
  CHECK(p.picks == std::vector<std::size_t>{0, 1, 1});
  // The credit gate held the last one back.
  auto advanced = advance(batches, {0, 1}, 4.0);
  CHECK(advanced.pass[0] == doctest::Approx(5.0));
  CHECK(advanced.pass[1] == doctest::Approx(4.5));
  CHECK(advanced.vtime == doctest::Approx(4.0));
  // A batch far behind the clock starts at it.
  std::vector<Batch> back = {{"old", 0, 1, 0.5, unlimited}, {"now", 0, 1, 10.0, unlimited}};
  auto q = plan(back, 2, 10.0);
  CHECK(q.picks == std::vector<std::size_t>{0, 1});
  CHECK(advance(back, q.picks, 10.0).pass[0] == doctest::Approx(11.0));
}

TEST_CASE("shares: caps and the provider's day") {
  const TimePoint now = from_epoch_ms(1795608000000);  // 2026-11-25T10:40:00Z
  const auto midnight = to_epoch_ms(next_utc_midnight(now));
  CHECK(day_key(std::nullopt, now) == midnight);
  CHECK(day_key(now + 1h, now) == to_epoch_ms(now + 1h));
  CHECK(day_key(now - 1h, now) == midnight);  // a stale reset: the next midnight
  Caps caps;
  CHECK(room_of(caps, midnight) == unlimited);
  caps.daily_cap = 10;
  caps.day_count = 7;
  caps.day_key = midnight;
  CHECK(room_of(caps, midnight) == 3);
  CHECK(room_of(caps, midnight + 86400000) == 10);  // yesterday's count does not hold today
  CHECK(day_count_after(caps, midnight, 2) == 9);
  CHECK(day_count_after(caps, midnight + 86400000, 2) == 2);
  caps.max_parallel = 4;
  caps.in_flight = 3;
  CHECK(room_of(caps, midnight) == 1);
  caps.in_flight = 9;
  CHECK(room_of(caps, midnight) == 0);
  Caps money;
  money.budget_left = 250;
  money.cheapest_cost = 100;
  CHECK(room_of(money, midnight) == 2);
  money.budget_left = -5;
  CHECK(room_of(money, midnight) == 0);
  money.available = 0;
  money.budget_left.reset();
  CHECK(room_of(money, midnight) == 0);
}

TEST_CASE("shares: a claim serves at most max_served batches, and over the claims every batch the same") {
  Sim sim;
  for (int i = 0; i < 1000; ++i) sim.add("b" + std::to_string(1000 + i), 1000000);
  auto first = sim.claim(100);
  CHECK(first.size() == 100);
  std::map<std::string, int> per;
  for (auto& k : first) ++per[k];
  CHECK(per.size() == max_served);
  for (auto& [k, n] : per) CHECK(n == 100 / static_cast<int>(max_served) + (k < "b1004" ? 1 : 0));
  // Ten rounds through the batches: everyone within about its part of a claim of the even share.
  sim.reset_counts();
  sim.run(1250, 100);
  std::int64_t least = 1 << 30, most = 0;
  for (auto& b : sim.batches) {
    least = std::min(least, b.got);
    most = std::max(most, b.got);
  }
  // A claim's part is 12.5 rows; where the rounds stand when the count is taken adds one.
  CHECK(least >= 125 - 14);
  CHECK(most <= 125 + 14);
  // Weight 3 among them: three times the others' share.
  Sim weighted;
  for (int i = 0; i < 99; ++i) weighted.add("b" + std::to_string(100 + i), 1000000);
  weighted.add("heavy", 1000000, 3);
  weighted.run(1020, 100);
  const double others = static_cast<double>(1020 * 100 - weighted["heavy"].got) / 99;
  CHECK(weighted["heavy"].got / others == doctest::Approx(3.0).epsilon(0.05));
}

TEST_CASE("shares: the served limit opens new batches as picked ones run out of room, the higher priority first") {
  std::vector<Batch> batches;
  for (int i = 0; i < 20; ++i) batches.push_back({"hi" + std::to_string(10 + i), 1, 1, 0.0, 2});
  for (int i = 0; i < 5; ++i) batches.push_back({"lo" + std::to_string(i), 0, 1, 0.0, unlimited});
  auto p = plan(batches, 100, 0.0);
  for (int i = 0; i < 20; ++i) CHECK(p.count[i] == 2);
  for (int i = 20; i < 25; ++i) CHECK(p.count[i] == 12);
  // The first 40 picks are the higher priority's.
  for (int k = 0; k < 40; ++k) CHECK(p.picks[k] < 20);
  // Unlimited room: max_served of the 20 take all 100.
  for (int i = 0; i < 20; ++i) batches[i].room = unlimited;
  auto q = plan(batches, 100, 0.0);
  std::size_t served = 0;
  for (int i = 0; i < 20; ++i) served += q.count[i] > 0;
  CHECK(served == max_served);
  for (int i = 20; i < 25; ++i) CHECK(q.count[i] == 0);
}
