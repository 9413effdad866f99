// See shares.hpp.
#include "shares/shares.hpp"

#include <algorithm>

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
// One step of the scheduler: the batch the next submit goes to, or none.
std::optional<std::size_t> next(const std::vector<Batch>& batches, const std::vector<double>& pass,
                                const std::vector<std::int64_t>& room, double vtime) {
  std::optional<std::size_t> best;
  double best_pass = 0;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    if (room[i] <= 0) continue;
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

Plan plan(const std::vector<Batch>& batches, std::int64_t slots, double vtime) {
  Plan out;
  out.count.assign(batches.size(), 0);
  std::vector<double> pass;
  std::vector<std::int64_t> room;
  for (const auto& b : batches) {
    pass.push_back(b.pass);
    room.push_back(b.room);
  }
  for (std::int64_t s = 0; s < slots; ++s) {
    auto i = next(batches, pass, room, vtime);
    if (!i) break;
    vtime = std::max(pass[*i], vtime);
    pass[*i] = vtime + stride(batches[*i]);
    --room[*i];
    ++out.count[*i];
    out.picks.push_back(*i);
  }
  return out;
}

Advanced advance(const std::vector<Batch>& batches, const std::vector<std::size_t>& taken, double vtime) {
  Advanced out;
  for (const auto& b : batches) out.pass.push_back(b.pass);
  for (auto i : taken) {
    vtime = std::max(out.pass[i], vtime);
    out.pass[i] = vtime + stride(batches[i]);
  }
  out.vtime = vtime;
  return out;
}

}  // namespace klingq::shares
