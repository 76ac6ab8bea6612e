// Package console is Sightline's built-in web UI: server-rendered pages for
// the node's health (Overview; on a cluster node also the active trainer
// and which API node served which variant with which model version), its
// kept traces with a waterfall of each (Traces: recommendation traces by
// default, the event path's behind a filter and on the page of the
// recommendation they answer), the log lines of the
// flight recorder (Logs), the record of one recommendation (Decisions),
// feature quality, confidence and variant usage (Model & data), the live
// A/B test's statistics (Experiments), the last offline policy evaluation
// with its trust verdict (Evaluate), in-process alerts with their
// root-cause hints (Alerts), and fault drills (Drills).
//
// The console owns its HTML templates, CSS and JavaScript (embedded with
// the embed package, no CDN, no build step) and a small bounded history of overview
// figures for the live charts, sampled by [Console.Run]. It owns no data:
// it reads the node's state through the small interfaces it declares in
// [Config] ([Traces], [Logs], [Decisions], [Stats], [Alerts], [Quality],
// [Drills], [Cluster], [Experiments], [Evaluations]) and takes their
// figures as the view types declared here; the app passes the real
// implementations and converts its own types (the console imports neither
// the experiment nor the evaluate package). A nil source hides its panel
// instead of failing.
// Live sections (the Overview's charts and cluster panel, the Experiments
// page) refresh in place every [Config.SampleInterval].
//
// Every page is read-only and needs no token. The one action that changes
// state, starting and stopping a fault on the Drills page, is sent by the
// page's script to the API's admin endpoint ([Config.FaultsURL]) with a
// bearer token the user types in; the console itself never sees or stores
// the token.
//
// Attribute values, log text and labels are user-influenced: every page is
// rendered with html/template (contextual escaping) and served under a
// Content-Security-Policy that allows no inline script or style.
//
// All methods of [Console] are safe for concurrent use.
package console
