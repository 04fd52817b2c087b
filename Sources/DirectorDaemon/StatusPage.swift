/// The status page at `/` of `director.metrics_listen`: plain HTML and a little script that
/// reads `/status.json` every second and draws the pair (who owns which buckets, the peer's
/// state, replica lag) and every service with its real servers' health, connections and rates.
/// No build step, nothing fetched from elsewhere.
enum StatusPage {
    static let refreshMilliseconds = 1000

    static let html = """
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <link rel="icon" href="data:,">
    <title>director</title>
    <style>
      body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; background: #fafbfc; }
      h1 { font-size: 1.3em; margin: 0 0 .3em; }
      h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
      table { border-collapse: collapse; background: #fff; }
      th, td { padding: .25em .7em; border-bottom: 1px solid #e3e6e8; text-align: right; white-space: nowrap; }
      th:first-child, td:first-child { text-align: left; }
      th { font-weight: 600; background: #f0f2f4; }
      tr.service td { font-weight: 600; background: #f6f8fa; }
      .up { color: #116329; } .down { color: #b3261e; font-weight: 600; } .other { color: #6a737d; }
      .dead { color: #b3261e; font-weight: 600; } .alive { color: #116329; }
      #state { color: #6a737d; } #state.stale { color: #b3261e; }
      dl { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; margin: 0; }
      dt { color: #6a737d; }
    </style>
    </head>
    <body>
    <h1>director <span id="node"></span></h1>
    <div id="state">loading…</div>
    <h2>Pair</h2>
    <dl id="pair"></dl>
    <h2>Services</h2>
    <table id="services">
      <thead><tr><th>Service / real server</th><th>Weight</th><th>Health</th><th>Active</th><th>Inactive</th>
      <th>Conn/s</th><th>Packets/s</th><th>Bytes/s</th><th>Connections</th></tr></thead>
      <tbody></tbody>
    </table>
    <script>
    "use strict";
    const refreshMilliseconds = \(refreshMilliseconds);
    function cell(row, text, className) {
      const td = row.insertCell();
      td.textContent = text;
      if (className) td.className = className;
      return td;
    }
    function rate(value) { return value >= 100 ? Math.round(value).toString() : value.toFixed(1); }
    function term(list, name, value, className) {
      const dt = document.createElement("dt"); dt.textContent = name;
      const dd = document.createElement("dd"); dd.textContent = value;
      if (className) dd.className = className;
      list.append(dt, dd);
    }
    function healthClass(health) { return health === "up" ? "up" : health === "down" ? "down" : "other"; }
    function draw(status) {
      document.getElementById("node").textContent = "node " + status.node + " (" + status.version + ")";
      const pair = document.getElementById("pair");
      pair.replaceChildren();
      term(pair, "buckets owned", status.buckets.owned_count + " of " + status.buckets.bucket_count +
        (status.buckets.owned.length ? " (" + status.buckets.owned.map(r => r[0] === r[1] ? r[0] : r[0] + "-" + r[1]).join(",") + ")" : ""));
      if (status.pair) {
        const p = status.pair;
        term(pair, "peer", "node " + p.peer_node + " at " + p.peer_address + ": " + p.peer_state, p.peer_state === "dead" ? "dead" : p.peer_state === "alive" ? "alive" : "");
        term(pair, "peer heard", p.peer_heard_ms_ago === undefined ? "never" : p.peer_heard_ms_ago.toFixed(0) + " ms ago");
        term(pair, "replica", p.caught_up ? "caught up" : "catching up");
        term(pair, "replica lag", p.replica_lag_p50_us === undefined ? "-" : "p50 ≤ " + p.replica_lag_p50_us + " µs, p99 ≤ " + p.replica_lag_p99_us + " µs");
        term(pair, "handovers", p.automatic_handover ? "automatic" : "paused by an operator");
      } else {
        term(pair, "peer", "none: this director runs alone");
      }
      const body = document.querySelector("#services tbody");
      body.replaceChildren();
      for (const service of status.services.services) {
        const row = body.insertRow();
        row.className = "service";
        row.dataset.service = service.protocol + ":" + service.address + ":" + service.port;
        cell(row, service.protocol.toUpperCase() + " " + service.address + ":" + service.port + " " + service.scheduler);
        cell(row, ""); cell(row, "");
        cell(row, service.active_connections); cell(row, service.inactive_connections);
        cell(row, rate(service.rates.connections_per_second)); cell(row, rate(service.rates.packets_per_second));
        cell(row, rate(service.rates.bytes_per_second)); cell(row, service.stats.connections);
        for (const server of service.real_servers) {
          const line = body.insertRow();
          line.dataset.server = server.address + ":" + server.port;
          line.dataset.health = server.health;
          cell(line, "→ " + server.address + ":" + server.port);
          cell(line, server.weight);
          const here = server.health_here === undefined ? "-" : server.health_here;
          const peer = server.health_peer === undefined ? "-" : server.health_peer;
          cell(line, server.health === "up" || server.health === "down" ? server.health + " (here " + here + ", peer " + peer + ")" : server.health,
               healthClass(server.health));
          cell(line, server.active_connections); cell(line, server.inactive_connections);
          cell(line, rate(server.rates.connections_per_second)); cell(line, rate(server.rates.packets_per_second));
          cell(line, rate(server.rates.bytes_per_second)); cell(line, server.stats.connections);
        }
      }
    }
    async function refresh() {
      const state = document.getElementById("state");
      try {
        const response = await fetch("status.json", { cache: "no-store", signal: AbortSignal.timeout(5000) });
        if (!response.ok) throw new Error("HTTP " + response.status);
        draw(await response.json());
        state.textContent = "updated " + new Date().toLocaleTimeString() + ", every " + refreshMilliseconds / 1000 + " s";
        state.className = "";
      } catch (error) {
        state.textContent = "cannot reach the director: " + error.message;
        state.className = "stale";
      }
      setTimeout(refresh, refreshMilliseconds);
    }
    refresh();
    </script>
    </body>
    </html>

    """
}
