// The console's page: HTML, CSS and JavaScript compiled into the binary (no CDN, works
// with no Internet). The script polls /api/overview every second and renders the
// overview, the job list and a job's page from the JSON API.
#pragma once

namespace klingq::console::page {
extern const char* const html;
extern const char* const css;
extern const char* const js;
}  // namespace klingq::console::page
