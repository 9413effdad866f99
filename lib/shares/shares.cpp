// See shares.hpp.
#include "shares/shares.hpp"

#include <algorithm>
#include <map>

namespace klingq::shares {

std::int64_t day_key(std::optional<TimePoint> day_reset_at, TimePoint now) {
  return to_epoch_ms(day_reset_at && *day_reset_at > now ? *day_reset_at : next_utc_midnight(now));
}

std::int64_t room_of(const Caps& caps, std::int64_t today) {
  std::int64_t room = unlimited;
  if (caps.max_parallel) room = std::min(room, std::max<std::int64_t>(0, *caps.max_parallel - caps.in_flight));
  if (caps.daily_cap) {
    const std::int64_t used = caps.day_key == today ? caps.day_count : 0;
    room = std::min(room, std::max<std::int64_t>(0, *caps.daily_cap - used));
  }
  if (caps.budget_left) {
    const std::int64_t left = std::max<std::int64_t>(0, *caps.budget_left);
    room = std::min(room, caps.cheapest_cost > 0 ? left / caps.cheapest_cost : unlimited);
  }
  if (caps.available) room = std::min(room, std::max<std::int64_t>(0, *caps.available));
  return room;
}

std::int64_t day_count_after(const Caps& caps, std::int64_t today, std::int64_t taken) {
  return (caps.day_key == today ? caps.day_count : 0) + taken;
}

namespace {
// One step of the scheduler: the batch the next submit goes to, or none. `open[p]` counts
// the picked batches of priority p that still have room: at `served`, only they are looked at.
std::optional<std::size_t> next(const std::vector<Batch>& batches, const std::vector<double>& pass,
                                const std::vector<std::int64_t>& room, const std::vector<bool>& picked,
                                const std::map<int, std::size_t>& open, std::size_t served, double vtime) {
  std::optional<std::size_t> best;
  double best_pass = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    if (room[i] <= 0) continue;
    if (!picked[i]) {
      auto o = open.find(batches[i].priority);
      if (o != open.end() && o->second >= served) continue;
    }
    const double p = std::max(pass[i], vtime);
    if (!best || batches[i].priority > batches[*best].priority ||
        (batches[i].priority == batches[*best].priority && p < best_pass)) {
      best = i;
      best_pass = p;
    }
  }
  return best;
}

double stride(const Batch& b) { return 1.0 / std::max(1, b.weight); }
}  // namespace

Plan plan(const std::vector<Batch>& batches, std::int64_t slots, double vtime, std::size_t served) {
  Plan out;
  out.count.assign(batches.size(), 0);
  std::vector<double> pass;
  std::vector<std::int64_t> room;
  std::vector<bool> picked(batches.size(), false);
  std::map<int, std::size_t> open;  // by priority: picked batches with room left
  for (const auto& b : batches) {
    pass.push_back(b.pass);
    room.push_back(b.room);
  }
  served = std::max<std::size_t>(1, served);
  for (std::int64_t s = 0; s < slots; ++s) {
    auto i = next(batches, pass, room, picked, open, served, vtime);
    if (!i) break;
    const int priority = batches[*i].priority;
    if (!picked[*i]) {
      picked[*i] = true;
      ++open[priority];
    }
    vtime = std::max(pass[*i], vtime);
    pass[*i] = vtime + stride(batches[*i]);
    if (--room[*i] == 0) --open[priority];
    ++out.count[*i];
    out.picks.push_back(*i);
  }
  return out;
}

Advanced advance(const std::vector<Batch>& batches, const std::vector<std::size_t>& taken, double vtime) {
  Advanced out;
  for (const auto& b : batches) out.pass.push_back(b.pass);
  const double floor = vtime;
  std::vector<bool> served(batches.size(), false);
  for (auto i : taken) {
    vtime = std::max(out.pass[i], vtime);
    out.pass[i] = vtime + stride(batches[i]);
    served[i] = true;
  }
  // The clock stops at the lowest pass of a batch of the same priority that waited with
  // room (one the served limit or the credit gate passed over): it keeps its turn.
  if (!taken.empty()) {
    const int priority = batches[taken.back()].priority;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      if (!served[i] && batches[i].room > 0 && batches[i].priority == priority) {
        vtime = std::min(vtime, std::max(out.pass[i], floor));
      }
    }
  }
  out.vtime = vtime;
  return out;
}

}  // namespace klingq::shares
