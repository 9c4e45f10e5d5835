{{/* The name of every object of the release: the release name (vigil for `helm install vigil`). */}}
{{- define "vigil.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vigil.labels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The labels that select one component's pods: (dict "root" $ "component" "agent"). */}}
{{- define "vigil.selector" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vigil.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}{{ include "vigil.name" . }}{{- else -}}{{ .Values.serviceAccount.name | default "default" }}{{- end -}}
{{- end -}}

{{- define "vigil.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The node's name, for events and for the pods of this node only. */}}
{{- define "vigil.nodeNameEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- end -}}

{{/* The security context of the containers that load BPF: root, the capabilities of agent.capabilities, nothing else. */}}
{{- define "vigil.bpfSecurityContext" -}}
runAsUser: 0
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
  add: {{- toYaml .Values.agent.capabilities | nindent 4 }}
{{- end -}}

{{/* What loading and attaching BPF needs of the node, mounted into the agent or sensor container. */}}
{{- define "vigil.bpfMounts" -}}
- name: bpffs
  mountPath: /sys/fs/bpf
- name: tracefs
  mountPath: /sys/kernel/tracing
- name: cgroup
  mountPath: /sys/fs/cgroup
  readOnly: true
- name: containerd
  mountPath: {{ .Values.agent.containerdSocket }}
- name: run
  mountPath: /var/run/vigil
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "vigil.bpfVolumes" -}}
- name: bpffs
  hostPath:
    path: /sys/fs/bpf
    type: DirectoryOrCreate
- name: tracefs
  hostPath:
    path: /sys/kernel/tracing
    type: Directory
- name: cgroup
  hostPath:
    path: /sys/fs/cgroup
    type: Directory
- name: containerd
  hostPath:
    path: {{ .Values.agent.containerdSocket }}
    type: Socket
- name: state
  hostPath:
    path: {{ .Values.agent.stateDir }}
    type: DirectoryOrCreate
- name: run
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* The pod-level fields shared by the agent's and the sensor's DaemonSets. */}}
{{- define "vigil.nodePodSpec" -}}
serviceAccountName: {{ include "vigil.serviceAccount" . }}
hostPID: true
hostNetwork: false
dnsPolicy: ClusterFirst
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The security context of a container that needs no privilege: the uid given, no capabilities. */}}
{{- define "vigil.unprivileged" -}}
runAsUser: {{ . }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* The container printing the events as JSON lines, as Tetragon's export-stdout container does. */}}
{{- define "vigil.exportStdout" -}}
{{- if .Values.exportStdout.enabled -}}
- name: export-stdout
  image: {{ .Values.exportStdout.image.repository }}:{{ .Values.exportStdout.image.tag }}
  imagePullPolicy: {{ .Values.exportStdout.image.pullPolicy }}
  command: [sh, -c, "touch /var/run/vigil/vigil.log && exec tail -n +1 -F /var/run/vigil/vigil.log"]
  securityContext: {{- include "vigil.unprivileged" 0 | nindent 4 }}
  resources: {{- toYaml .Values.exportStdout.resources | nindent 4 }}
  volumeMounts:
    - name: run
      mountPath: /var/run/vigil
{{- end }}
{{- end -}}
