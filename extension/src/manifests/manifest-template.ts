/** The starting point for a hand-written task manifest (validated by the JSON Schema in `schemas/`). */
export function manifestTemplate(id: string, title: string): string {
  return `# Optimus task manifest. Each unit is one small, verifiable change; \`check\` is the command whose
# exit code proves it done. Run it with "Optimus: Run Manifest".
apiVersion: optimus/v1
kind: Task
id: ${id}
title: ${JSON.stringify(title)}
description: |
  What this task is for, and anything the agents should know.
priority: 0
units:
  - id: first-change
    goal: Describe the first change precisely.
    files: []
    check: npm test
  - id: second-change
    goal: Describe a change that builds on the first.
    dependsOn: [first-change]
    files: []
`;
}
