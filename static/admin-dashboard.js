// Dashboard charts, drawn with the locally served Chart.js from the server-rendered data.
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const line = (id, label, values, color) => new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: data.labels, datasets: [{ label, data: values, borderColor: color,
      backgroundColor: color + "33", fill: true, tension: 0.25, pointRadius: 2 }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
  line("chart-messages", "Messages", data.messages, "#206bc4");
  line("chart-tokens", "Tokens", data.tokens, "#ae3ec9");
  new Chart(document.getElementById("chart-executions"), {
    type: "doughnut",
    data: { labels: ["success", "failed"], datasets: [{ data: data.executions,
      backgroundColor: ["#2fb344", "#d63939"] }] },
  });
  new Chart(document.getElementById("chart-feedback"), {
    type: "doughnut",
    data: { labels: ["helpful", "not helpful"], datasets: [{ data: data.feedback,
      backgroundColor: ["#2fb344", "#f76707"] }] },
  });
  new Chart(document.getElementById("chart-users"), {
    type: "bar",
    data: { labels: data.users, datasets: [{ label: "Messages", data: data.user_messages,
      backgroundColor: "#206bc4" }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } } },
  });
})();
